//! The load-balancer configurations, HAProxy's (`deploy/haproxy/haproxy.cfg`) and nginx's
//! (`deploy/nginx/rampart.conf`), which the integration tests also run in front of three
//! instances (`tests/it/balancer.rs`): what Rampart relies on is there (round-robin without
//! stickiness, except the audit search, hashed by the caller's credentials onto the same
//! servers, since its cursor is valid on one instance only; the appended `X-Forwarded-For`, a replaced `X-Forwarded-Proto`, WebSocket
//! upgrades and idle timeouts above the server's heartbeat), and `haproxy -c` and `nginx -t`
//! (installed by `scripts/deps.sh haproxy nginx`) accept each file with its site blocks filled in.

use std::path::PathBuf;
use std::process::Command;

use super::config_blocks::{block, replace_block};
use super::read;

const HAPROXY: &str = "haproxy/haproxy.cfg";
const NGINX: &str = "nginx/rampart.conf";
/// `RAMPART_WS_CLIENT_TIMEOUT_SECS`' default: a silent client is closed by the server then,
/// so an idle timeout of the proxy at or below it could cut a socket the server keeps.
const CLIENT_TIMEOUT_SECS: u64 = 45;

/// Directives without comments, trimmed.
fn directives(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `120s`, `2m`, `120` (seconds) as seconds.
fn seconds(value: &str) -> u64 {
    let value = value.trim_end_matches(';');
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("a duration: {value}"));
    match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => panic!("unit {other} in {value}"),
    }
}

/// The program from PATH or Debian's sbin directories.
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is missing: run scripts/deps.sh haproxy nginx"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn haproxy_balances_round_robin_and_forwards_what_rampart_reads() {
    let text = read(HAPROXY);
    let d = directives(&text);
    let has = |line: &str| d.iter().any(|l| l == line);
    for needed in [
        "mode http",
        "balance roundrobin",
        "option forwardfor",
        "http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "http-request set-header X-Forwarded-Proto http unless { ssl_fc }",
        "option httpchk",
        "http-check send meth GET uri /readyz",
        "http-request deny deny_status 404 if { path /metrics }",
    ] {
        assert!(has(needed), "missing `{needed}`");
    }
    for sticky in ["cookie ", "stick ", "stick-table", "balance source"] {
        assert!(
            !d.iter().any(|l| l.starts_with(sticky)),
            "no stickiness: `{sticky}`"
        );
    }
    // Only the audit search has affinity, by a hash of the caller's credentials.
    let backend = |name: &str| -> Vec<String> {
        d.iter()
            .skip_while(|l| **l != format!("backend {name}"))
            .skip(1)
            .take_while(|l| !l.starts_with("backend ") && !l.starts_with("frontend "))
            .cloned()
            .collect()
    };
    assert!(backend("rampart").contains(&"balance roundrobin".to_string()));
    assert!(has(
        "use_backend rampart_audit if { path /api/v1/platform/audit }"
    ));
    let audit = backend("rampart_audit");
    for needed in [
        "http-request set-var(txn.session) req.cook(rampart_session)",
        "http-request set-var(txn.bearer) req.hdr(authorization)",
        "balance hash str(caller),concat(:,txn.session,:),concat(,txn.bearer,)",
        "hash-type consistent",
        "http-check send meth GET uri /readyz",
    ] {
        assert!(
            audit.iter().any(|l| l == needed),
            "rampart_audit: `{needed}`"
        );
    }
    assert_eq!(
        block(&text, "audit-servers"),
        block(&text, "servers"),
        "the audit search is served by the same instances"
    );
    let tunnel = d
        .iter()
        .find_map(|l| l.strip_prefix("timeout tunnel "))
        .expect("a WebSocket (tunnel) timeout");
    assert!(
        seconds(tunnel) > CLIENT_TIMEOUT_SECS,
        "timeout tunnel {tunnel}"
    );
    let servers = block(&text, "servers");
    assert!(servers.len() >= 2 && servers.iter().all(|l| l.starts_with("server ")));
    assert!(
        block(&text, "listen").iter().any(|l| l.contains(" ssl ")),
        "the shipped frontend terminates TLS"
    );
}

#[test]
fn haproxy_accepts_the_configuration() {
    let dir = scratch("haproxy-check");
    let local = replace_block(&read(HAPROXY), "listen", &["bind 127.0.0.1:8080".into()]);
    let config = dir.join("haproxy.cfg");
    std::fs::write(&config, local).unwrap();
    let out = Command::new(program("haproxy"))
        .arg("-c")
        .arg("-f")
        .arg(&config)
        .output()
        .expect("run haproxy -c");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // Warnings point at directives that do not do what the file says.
    assert!(!text.contains("[WARNING]"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn nginx_balances_round_robin_and_forwards_what_rampart_reads() {
    let text = read(NGINX);
    let d = directives(&text);
    let has = |line: &str| d.iter().any(|l| l == line);
    for needed in [
        "proxy_pass http://rampart;",
        "proxy_http_version 1.1;",
        "proxy_set_header Host $host;",
        // Appended to whatever the client sent: the right-most entry is the peer.
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
    ] {
        assert!(has(needed), "missing `{needed}`");
    }
    assert!(
        !d.iter().any(|l| l.contains("$http_x_forwarded_for")),
        "a client-written header passed on as is would choose the address"
    );
    for sticky in ["ip_hash", "sticky", "least_conn"] {
        assert!(
            !d.iter().any(|l| l.starts_with(sticky)),
            "round-robin only: `{sticky}`"
        );
    }
    // One hash, in the audit search's upstream, keyed by the caller's credentials; that
    // upstream serves exactly the audit search.
    let hashes: Vec<&String> = d.iter().filter(|l| l.starts_with("hash ")).collect();
    assert_eq!(
        hashes,
        vec!["hash $cookie_rampart_session$http_authorization consistent;"]
    );
    let after = |first: &str| -> Vec<String> {
        d.iter()
            .skip_while(|l| *l != first)
            .skip(1)
            .take_while(|l| *l != "}")
            .cloned()
            .collect()
    };
    assert!(after("upstream rampart_audit {").contains(hashes[0]));
    assert_eq!(
        after("location = /api/v1/platform/audit {"),
        vec!["proxy_pass http://rampart_audit;"]
    );
    assert_eq!(after("location / {"), vec!["proxy_pass http://rampart;"]);
    assert_eq!(
        block(&text, "audit-servers"),
        block(&text, "servers"),
        "the audit search is served by the same instances"
    );
    for timeout in ["proxy_read_timeout ", "proxy_send_timeout "] {
        let value = d
            .iter()
            .find_map(|l| l.strip_prefix(timeout))
            .unwrap_or_else(|| panic!("missing {timeout}"));
        assert!(seconds(value) > CLIENT_TIMEOUT_SECS, "{timeout}{value}");
    }
    let servers = block(&text, "servers");
    assert!(servers.len() >= 2 && servers.iter().all(|l| l.starts_with("server ")));
    assert_eq!(
        servers.len(),
        block(&read(HAPROXY), "servers").len(),
        "the same deployment as the HAProxy example"
    );
}

#[test]
fn nginx_accepts_the_configuration() {
    let dir = scratch("nginx-check");
    let local = replace_block(&read(NGINX), "listen", &["listen 127.0.0.1:8443;".into()]);
    std::fs::write(dir.join("rampart.conf"), local).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    // The file is for the http context: a minimal main configuration around it.
    let main = format!(
        "pid {pid};\nerror_log stderr;\nevents {{}}\nhttp {{\n    access_log off;\n    include {conf};\n}}\n",
        pid = dir.join("nginx.pid").display(),
        conf = dir.join("rampart.conf").display(),
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    // -t parses and checks (certificates too) without binding or serving anything.
    let out = Command::new(program("nginx"))
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg("stderr")
        .output()
        .expect("run nginx -t");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("test is successful"), "{text}");
    assert!(!text.contains("[warn]"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}
