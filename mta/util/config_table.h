/*
 * config_table - every configuration parameter, its default, bounds and
 * documentation, in one table (an X-macro). The config struct, validation,
 * `strictmtad -n` and docs/config.md all come from here.
 *
 * Where Postfix has a parameter for the same thing, the name and meaning
 * are Postfix's, so that a postmaster reads the file without a manual.
 *
 * CFG(name, type, default, min, max, choices, doc)
 *   type: STR (text), LIST (text, items separated by space or comma),
 *   INT, SIZE (bytes), TIME (seconds; a value may end in s, m, h, d or w),
 *   BOOL (yes/no). choices: "a|b|c" restricts a STR, "" otherwise.
 */
CFG(queue_directory, STR, "/var/spool/strictmta", 0, 0, "",
    "Where the queue database, the maildrop area, and the control socket live.")
CFG(mail_owner, STR, "strictmta", 0, 0, "",
    "The unprivileged user the daemon runs as after binding its ports; owns "
    "the queue.")
CFG(setgid_group, STR, "strictmtadrop", 0, 0, "",
    "The group that the sendmail program runs as (setgid) to write the "
    "maildrop area.")
CFG(admin_group, STR, "", 0, 0, "",
    "Group allowed to use the control socket (queue CLI) besides root; empty: "
    "root only.")
CFG(myhostname, STR, "", 0, 0, "",
    "This host's fully qualified name, used in greetings, Received: headers "
    "and EHLO. Empty: the system's host name.")
CFG(mydomain, STR, "", 0, 0, "",
    "Domain added to unqualified addresses from local submission. Empty: "
    "myhostname less its first label.")
CFG(smtpd_banner, STR, "$myhostname ESMTP strictmta", 0, 0, "",
    "Text after 220 in the greeting.")
CFG(smtpd_listen, LIST, "127.0.0.1:25", 0, 0, "",
    "Addresses (host:port or [v6]:port) for plain SMTP with STARTTLS (port 25 "
    "and 587 style).")
CFG(smtps_listen, LIST, "", 0, 0, "",
    "Addresses for implicit TLS (RFC 8314, port 465 style); needs "
    "smtpd_tls_cert_file.")
CFG(mynetworks, LIST, "127.0.0.0/8 [::1]/128", 0, 0, "",
    "Clients in these networks may relay; everyone else must authenticate.")
CFG(message_size_limit, SIZE, "10240000", 1024, 2147483647, "",
    "Largest message accepted, in bytes (announced with SIZE).")
CFG(smtpd_recipient_limit, INT, "1000", 100, 100000, "",
    "Most recipients in one message (RFC 5321 4.5.3.1.8 asks for at least "
    "100).")
CFG(smtpd_client_connection_count_limit, INT, "50", 1, 100000, "",
    "Most simultaneous connections from one client address.")
CFG(smtpd_connection_limit, INT, "200", 1, 100000, "",
    "Most simultaneous SMTP connections in all.")
CFG(smtpd_connection_reserve, INT, "20", 0, 100000, "",
    "Connections of smtpd_connection_limit kept for mynetworks clients "
    "(at most half of it): others get at most the rest, and leave the "
    "count once authenticated.")
CFG(smtpd_client_ipv6_prefix_length, INT, "64", 1, 128, "",
    "IPv6 clients are counted per network of this many bits for "
    "smtpd_client_connection_count_limit and the AUTH failure limit.")
CFG(smtpd_tls_handshake_timeout, TIME, "10s", 1, 3600, "",
    "Time for a client's TLS handshake (implicit TLS before the greeting, "
    "and after STARTTLS).")
CFG(smtpd_helo_timeout, TIME, "30s", 1, 86400, "",
    "Time from the greeting (or from TLS) to the client's EHLO or HELO.")
CFG(smtpd_session_time_limit, TIME, "1h", 1, 604800, "",
    "Longest SMTP session, however active; then 421 and the connection "
    "closes (a message being committed is answered first).")
CFG(smtpd_timeout, TIME, "300s", 1, 86400, "",
    "How long the server waits for a command or a block of DATA before it "
    "hangs up (421).")
CFG(smtpd_hard_error_limit, INT, "20", 1, 1000, "",
    "Errors from one client before the server hangs up.")
CFG(smtpd_forbid_bare_newline, BOOL, "yes", 0, 0, "",
    "Refuse a message with a bare LF or bare CR (SMTP smuggling defence) with "
    "554 5.5.2.")
CFG(smtpd_tls_cert_file, STR, "", 0, 0, "",
    "PEM certificate chain of the SMTP server; STARTTLS is offered only when "
    "set.")
CFG(smtpd_tls_key_file, STR, "", 0, 0, "",
    "PEM private key of the SMTP server.")
CFG(smtpd_sasl_auth_enable, BOOL, "no", 0, 0, "",
    "Offer AUTH PLAIN and LOGIN (RFC 4954), only over TLS.")
CFG(smtpd_sasl_password_file, STR, "", 0, 0, "",
    "Lines of user:hash, hash as made by crypt(3) (yescrypt, SHA-512); no "
    "plaintext.")
CFG(smtpd_sasl_check_threads, INT, "1", 1, 16, "",
    "Threads that check passwords, off the event loop; one leaves the other "
    "cores to mail.")
CFG(smtpd_sasl_failure_delay, TIME, "1s", 0, 60, "",
    "After the n-th failed AUTH of a session, the 535 reply waits n times "
    "this (at most 10 times); nothing else from that client is read "
    "meanwhile.")
CFG(smtpd_client_auth_failure_limit, INT, "10", 1, 100000, "",
    "Failed AUTH attempts from one client (address, or IPv6 network) per "
    "smtpd_auth_failure_window; beyond it the client gets 421 4.7.0 and is "
    "disconnected until the window ends.")
CFG(smtpd_sasl_user_failure_limit, INT, "20", 1, 100000, "",
    "Failed AUTH attempts for one user name per smtpd_auth_failure_window, "
    "from anywhere; beyond it that name gets 454 4.7.0 without a check.")
CFG(smtpd_auth_failure_window, TIME, "10m", 1, 86400, "",
    "The period the AUTH failure limits count over.")
CFG(maillog_file, STR, "", 0, 0, "",
    "Log file; empty: syslog (facility mail); '-': standard error.")
CFG(syslog_name, STR, "strictmta", 0, 0, "", "Program name in log lines.")
CFG(import_interval, TIME, "1s", 1, 3600, "",
    "How often the daemon looks in the maildrop area for mail from sendmail.")
CFG(smtp_helo_name, STR, "$myhostname", 0, 0, "",
    "Name sent in EHLO by the delivery client.")
CFG(smtp_connect_timeout, TIME, "30s", 1, 3600, "",
    "Time to establish a TCP connection to a server.")
CFG(smtp_helo_timeout, TIME, "300s", 1, 3600, "",
    "Time for the greeting and the EHLO reply (RFC 5321 4.5.3.2.1).")
CFG(smtp_mail_timeout, TIME, "300s", 1, 3600, "",
    "Time for the MAIL FROM reply (RFC 5321 4.5.3.2.2).")
CFG(smtp_rcpt_timeout, TIME, "300s", 1, 3600, "",
    "Time for each RCPT TO reply (RFC 5321 4.5.3.2.3).")
CFG(smtp_data_init_timeout, TIME, "120s", 1, 3600, "",
    "Time for the DATA reply (RFC 5321 4.5.3.2.4).")
CFG(smtp_data_xfer_timeout, TIME, "180s", 1, 3600, "",
    "Time to send each block of message content (RFC 5321 4.5.3.2.5).")
CFG(smtp_data_done_timeout, TIME, "600s", 1, 3600, "",
    "Time for the reply to the final dot (RFC 5321 4.5.3.2.6).")
CFG(smtp_quit_timeout, TIME, "300s", 1, 3600, "", "Time for the QUIT reply.")
CFG(smtp_starttls_timeout, TIME, "300s", 1, 3600, "",
    "Time for the STARTTLS reply and the TLS handshake.")
CFG(smtp_tls_security_level, STR, "dane", 0, 0,
    "none|may|encrypt|dane|dane-only|secure",
    "TLS for hosts that no DANE or MTA-STS policy covers (those policies are "
    "always enforced, whatever this says): none (no TLS), may and dane "
    "(opportunistic), encrypt (TLS required, unauthenticated), dane-only "
    "(every host must have usable DANE TLSA records, else mail waits), secure "
    "(TLS 1.2+, certificate verified by the Web PKI for the host name).")
CFG(smtp_tls_CAfile, STR, "", 0, 0, "",
    "PEM bundle of trusted roots for verifying servers (MTA-STS, logging); "
    "empty: the system store.")
CFG(smtp_tls_fallback_to_clear, BOOL, "no", 0, 0, "",
    "After a failed TLS handshake with a destination that has no policy, retry "
    "in clear (as Sendmail's TLSFallbacktoClear). Never for DANE or MTA-STS "
    "enforce.")
CFG(tls_required_no_enable, BOOL, "no", 0, 0, "",
    "Honour a TLS-Required: No header (RFC 8689 5): such a message goes with "
    "opportunistic TLS even where DANE or MTA-STS would make it wait. Off by "
    "default: any sender can write that header.")
CFG(smtp_dns_support_level, STR, "dnssec", 0, 0, "enabled|dnssec",
    "dnssec: look up DNSSEC status and do DANE; enabled: plain DNS, no DANE.")
CFG(inet_protocols, STR, "all", 0, 0, "all|ipv4|ipv6",
    "Address families used for delivery.")
CFG(smtp_address_preference, STR, "any", 0, 0, "any|ipv4|ipv6",
    "Which address family to try first for an MX host.")
CFG(transport_maps, STR, "", 0, 0, "",
    "File of 'domain [host]:port' lines: a fixed next hop per recipient domain "
    "('.domain' matches subdomains).")
CFG(default_process_limit, INT, "100", 1, 10000, "",
    "Most delivery connections in all.")
CFG(default_destination_concurrency_limit, INT, "20", 1, 1000, "",
    "Most delivery connections to one destination.")
CFG(default_destination_recipient_limit, INT, "50", 1, 1000, "",
    "Most recipients in one delivery transaction.")
CFG(smtp_connection_reuse_count_limit, INT, "100", 1, 100000, "",
    "Most messages sent over one connection.")
CFG(smtp_connection_cache_time_limit, TIME, "2s", 0, 300, "",
    "How long an idle delivery connection is kept for the next message.")
CFG(minimal_backoff_time, TIME, "300s", 1, 86400, "",
    "Least time before a deferred recipient is tried again.")
CFG(maximal_backoff_time, TIME, "4000s", 1, 604800, "",
    "Most time between attempts for a deferred recipient.")
CFG(queue_run_delay, TIME, "300s", 1, 86400, "",
    "How often the whole queue is scanned for due mail (the time index is also "
    "watched).")
CFG(maximal_queue_lifetime, TIME, "5d", 0, 8640000, "",
    "How long a recipient may stay deferred before it fails and bounces.")
CFG(bounce_queue_lifetime, TIME, "5d", 0, 8640000, "",
    "Queue lifetime for bounces (null sender) before they are dropped.")
CFG(delay_warning_time, TIME, "0h", 0, 8640000, "",
    "Send a delay warning after this long in the queue; 0: never.")
CFG(queue_minfree, SIZE, "0", 0, 1099511627776, "",
    "Free space the queue's file system must keep beyond twice a new message's "
    "size, else mail is refused with 452 4.3.1; 0: 33 MB (the database cache, "
    "log buffer and two log files).")
CFG(dns_resolver_mode, STR, "recursive", 0, 0, "recursive|stub",
    "recursive: getdns's own validating recursion from the root; stub: ask "
    "dns_stub_resolvers and validate locally.")
CFG(dns_stub_resolvers, LIST, "", 0, 0, "",
    "Upstream resolvers for stub mode, addr or addr@port.")
CFG(dnssec_trust_anchor_file, STR, "", 0, 0, "",
    "Trust anchor file (DS or DNSKEY records, zone file format); empty: the "
    "system's root anchor.")
CFG(dns_timeout, TIME, "10s", 1, 300, "", "Time limit for one DNS lookup.")
CFG(dns_failure_cache_time, TIME, "10s", 0, 3600, "",
    "How long a failed lookup (timeout, SERVFAIL) is remembered before it "
    "is asked again; NXDOMAIN and NODATA keep their RFC 2308 negative TTL.")
CFG(dns_cache_size, INT, "10000", 0, 1000000, "",
    "Most answers kept in the resolver's cache (oldest evicted first); 0: no "
    "cache, concurrent lookups still share one query.")
CFG(mta_sts_enable, BOOL, "yes", 0, 0, "",
    "Discover, fetch and enforce MTA-STS policies (RFC 8461).")
CFG(mta_sts_fetch_timeout, TIME, "30s", 1, 120, "",
    "Time limit for fetching one MTA-STS policy over HTTPS.")
CFG(mta_sts_CAfile, STR, "", 0, 0, "",
    "PEM bundle of roots for MTA-STS policy hosts and MX certificates; empty: "
    "smtp_tls_CAfile, then the system store.")
CFG(mta_sts_port, INT, "443", 1, 65535, "",
    "Port of the policy host (443; other values only for test networks).")
/* explain-metrics: the Prometheus endpoint (docs/metrics.md). */
CFG(metrics_listen, STR, "", 0, 0, "",
    "Address (127.0.0.1:PORT or [::1]:PORT; loopback only, it has no "
    "authentication) of the Prometheus metrics endpoint, /metrics; empty: "
    "off.")
