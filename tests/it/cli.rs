//! The `rampart` binary: operator commands, configuration errors, and embedded mode.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Account, Client, TestApp};

pub fn rampart() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "RAMPART_BIND",
        "RAMPART_DATA_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RAMPART_LOG", "warning");
    cmd
}

/// Runs `rampart ARGS` against the database at `url`, asserts it succeeded (showing its
/// stderr otherwise) and returns its output.
pub(crate) fn run_ok(args: &[&str], url: &str) -> std::process::Output {
    let out = rampart()
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn json_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with('{') && !l.contains("\"level\""))
        .unwrap_or_else(|| panic!("no JSON line in {text}"));
    serde_json::from_str(line).unwrap()
}

#[actix_web::test]
async fn tenant_and_user_create_print_json_and_the_user_can_sign_in() {
    let app = TestApp::spawn().await;
    let url = app.db.superuser_url();
    let out = run_ok(
        &[
            "tenant",
            "create",
            "--slug",
            "delta",
            "--name",
            "Delta Diner",
        ],
        &url,
    );
    let tenant = json_line(&out.stdout);
    assert_eq!(tenant["slug"], "delta");
    assert_eq!(tenant["name"], "Delta Diner");

    let out = run_ok(
        &[
            "user",
            "create",
            "--email",
            "cook@delta.example",
            "--role",
            "tenant_staff",
            "--tenant",
            "delta",
        ],
        &url,
    );
    let user = json_line(&out.stdout);
    assert_eq!(user["tenant_id"], tenant["id"]);
    let generated = user["password"].as_str().unwrap().to_string();

    let mut child = rampart()
        .args(["user", "create", "--email", "boss@platform.example"])
        .args(["--role", "platform_owner", "--password-stdin"])
        .env("DATABASE_URL", &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a chosen passphrase here\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let owner = json_line(&out.stdout);
    assert!(owner.get("password").is_none());
    assert_eq!(owner["role"], "platform_owner");
    assert!(owner["tenant_id"].is_null());

    for (email, password) in [
        ("cook@delta.example", generated),
        (
            "boss@platform.example",
            "a chosen passphrase here".to_string(),
        ),
    ] {
        let c = app
            .login(&Account {
                email: email.into(),
                password,
            })
            .await;
        assert_eq!(c.get("/api/v1/auth/me").await.body["email"], email);
    }

    let dup = rampart()
        .args(["tenant", "create", "--slug", "delta", "--name", "Again"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
}

#[actix_web::test]
async fn create_exits_2_for_a_bad_value_and_3_for_an_unknown_tenant_storing_nothing() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let url = app.db.superuser_url();
    let run = |args: &[&str]| {
        rampart()
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let user = |email: &str, more: &[&str]| {
        let mut args = vec!["user", "create", "--email", email];
        args.extend_from_slice(more);
        run(&args)
    };
    let cases: [(std::process::Output, i32, &str); 7] = [
        (
            run(&["tenant", "create", "--slug", "Not A Slug", "--name", "X"]),
            2,
            "slug",
        ),
        (
            run(&["tenant", "create", "--slug", "-dash", "--name", "X"]),
            2,
            "slug",
        ),
        (
            user(
                "x@alpha.example",
                &["--role", "emperor", "--tenant", &a.slug],
            ),
            2,
            "--role",
        ),
        (
            user("x@alpha.example", &["--role", "tenant_staff"]),
            2,
            "tenant",
        ),
        (
            user(
                "x@alpha.example",
                &["--role", "platform_owner", "--tenant", &a.slug],
            ),
            2,
            "role",
        ),
        (
            user(
                "not an email",
                &["--role", "tenant_staff", "--tenant", &a.slug],
            ),
            2,
            "email",
        ),
        (
            user(
                "x@nowhere.example",
                &["--role", "tenant_staff", "--tenant", "nowhere"],
            ),
            3,
            "nowhere",
        ),
    ];
    for (i, (out, code, says)) in cases.iter().enumerate() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "case {i}: {err}");
        assert!(out.stdout.is_empty(), "case {i}");
        assert!(err.contains(says), "case {i}: {err}");
    }
    let listed = run_ok(&["user", "list"], &url);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(!text.contains("x@"), "{text}");
    let listed = run_ok(&["tenant", "list"], &url);
    let tenants: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(tenants.as_array().unwrap().len(), 1);
}

#[test]
fn a_bad_variable_is_a_clear_start_up_error() {
    let out = rampart()
        .args(["migrate"])
        .env("RAMPART_WS_MESSAGE_LIMIT", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RAMPART_WS_MESSAGE_LIMIT"), "{err}");
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Pids of live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        if cmdline.contains(needle) && !zombie {
            found.push(pid);
        }
    }
    found
}

/// Waits (bounded) until no process mentions `needle`.
fn wait_until_gone(needle: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Served {
    child: std::process::Child,
    base: String,
    demo_lines: Vec<String>,
}

/// Starts `rampart serve [--demo]` in embedded mode and waits for it to answer.
async fn serve_embedded(data_dir: &Path, demo: bool) -> Served {
    let port = free_port();
    let mut cmd = rampart();
    cmd.arg("serve");
    if demo {
        cmd.arg("--demo");
    }
    let mut child = cmd
        .env("RAMPART_DATA_DIR", data_dir)
        .env("RAMPART_AUDIT_LOG", data_dir.join("audit.log"))
        .env("RAMPART_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new(&base, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut demo_lines = Vec::new();
    loop {
        while let Ok(line) = rx.try_recv() {
            if line.starts_with("demo user: ") {
                demo_lines.push(line);
            }
        }
        if let Ok(Some(_)) = child.try_wait() {
            panic!("server exited during start-up");
        }
        let up = awc::Client::default()
            .get(format!("{base}/healthz"))
            .send()
            .await;
        if up.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    // Demo lines are printed before listening; collect any still buffered.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        if line.starts_with("demo user: ") {
            demo_lines.push(line);
        }
    }
    let _ = client;
    Served {
        child,
        base,
        demo_lines,
    }
}

fn terminate(child: &mut std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "server exit status {status}");
}

#[actix_web::test]
async fn embedded_mode_serves_demo_data_and_leaves_no_process_behind() {
    let dir = std::env::temp_dir().join(format!("rampart-embedded-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let needle = dir.join("pg").display().to_string();

    let mut served = serve_embedded(&dir, true).await;
    assert_eq!(served.demo_lines.len(), 5, "{:?}", served.demo_lines);
    let staff_line = served
        .demo_lines
        .iter()
        .find(|l| l.contains("(tenant_staff, aurora-bistro)"))
        .expect("a staff user of the first tenant");
    let parts: Vec<&str> = staff_line.split_whitespace().collect();
    let (email, password) = (parts[2], parts[3]);
    assert!(served
        .demo_lines
        .iter()
        .any(|l| l.ends_with("(platform_owner, platform)")));

    let login = Client::new(&served.base, None)
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let token = login.body["token"].as_str().unwrap().to_string();
    let tenant = login.body["user"]["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let staff = Client::new(&served.base, Some(token));
    let created = staff
        .post(
            &crate::orders_path(&tenant),
            &crate::order_body("soup", 2, 650),
        )
        .await;
    assert_eq!(created.status, 201);
    assert!(
        !processes_mentioning(&needle).is_empty(),
        "embedded postgres runs"
    );

    // The CLI uses the running server's database.
    let out = rampart()
        .args(["tenant", "create", "--slug", "cli-made", "--name", "CLI"])
        .env("RAMPART_DATA_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    terminate(&mut served.child);
    assert_eq!(
        wait_until_gone(&needle),
        Vec::<u32>::new(),
        "postgres left running"
    );

    // With no server running, the CLI starts the cluster for its own length only.
    let out = rampart()
        .args(["user", "create", "--email", "late@aurora-bistro.example"])
        .args(["--role", "tenant_admin", "--tenant", "aurora-bistro"])
        .env("RAMPART_DATA_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(wait_until_gone(&needle), Vec::<u32>::new());

    // A crash (SIGKILL) leaves a stale postmaster.pid; the next start recovers and keeps data,
    // and --demo does not reseed a database that has users.
    let mut served = serve_embedded(&dir, false).await;
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    assert_eq!(
        wait_until_gone(&needle),
        Vec::<u32>::new(),
        "orphan postgres after crash"
    );
    let mut served = serve_embedded(&dir, true).await;
    assert!(served.demo_lines.is_empty());
    let again = Client::new(&served.base, None)
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(again.status, 200);
    let token = again.body["token"].as_str().unwrap().to_string();
    let orders = Client::new(&served.base, Some(token))
        .get(&crate::orders_path(&tenant))
        .await;
    assert_eq!(orders.body["items"].as_array().unwrap().len(), 1);
    terminate(&mut served.child);
    assert_eq!(wait_until_gone(&needle), Vec::<u32>::new());
    let _ = std::fs::remove_dir_all(&dir);
}
