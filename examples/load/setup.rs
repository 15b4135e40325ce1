//! `setup`: creates tenants and users with the operator CLI (`rampart tenant create`,
//! `rampart user create --password-stdin`), so no platform owner or second factor is needed,
//! writes the users file, and seeds orders over REST.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use rand::distributions::{Alphanumeric, DistString};

use crate::client::{self, UserLine};

pub struct SetupArgs {
    /// The `rampart` binary; it reads the same environment as the server (`RAMPART_DATA_DIR`
    /// or `DATABASE_URL`), so it reaches the server's database.
    pub rampart: PathBuf,
    pub tenants: usize,
    pub users_per_tenant: usize,
    /// Orders created per tenant over REST (needs `--url`).
    pub orders: usize,
    pub prefix: String,
    pub out: PathBuf,
}

/// Runs the CLI and returns the JSON object it printed.
fn cli(rampart: &PathBuf, args: &[&str], stdin: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let mut child = Command::new(rampart)
        .args(args)
        .env("RAMPART_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", rampart.display()))?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "rampart {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    Ok(serde_json::from_str(line)?)
}

fn id_of(v: &serde_json::Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no id in {v}"))
}

pub fn setup(base: &str, a: SetupArgs) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    for t in 0..a.tenants {
        let slug = format!("{}-t{t}", a.prefix);
        let tenant = cli(
            &a.rampart,
            &[
                "tenant",
                "create",
                "--slug",
                &slug,
                "--name",
                &format!("Load tenant {t}"),
            ],
            None,
        )?;
        let tenant_id = id_of(&tenant)?;
        for u in 0..a.users_per_tenant {
            let email = format!("{}-u{u}@t{t}.load.example", a.prefix);
            let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 24);
            let user = cli(
                &a.rampart,
                &[
                    "user",
                    "create",
                    "--email",
                    &email,
                    "--role",
                    "tenant_staff",
                    "--tenant",
                    &slug,
                    "--password-stdin",
                ],
                Some(&format!("{password}\n")),
            )?;
            lines.push(UserLine {
                email,
                password,
                tenant_id: tenant_id.clone(),
                user_id: id_of(&user)?,
            });
        }
    }
    let mut text = String::from("# email password tenant_id user_id (written by `load setup`)\n");
    for l in &lines {
        text.push_str(&format!(
            "{} {} {} {}\n",
            l.email, l.password, l.tenant_id, l.user_id
        ));
    }
    std::fs::write(&a.out, text)?;
    if a.orders > 0 {
        let firsts: Vec<UserLine> = lines.iter().step_by(a.users_per_tenant).cloned().collect();
        actix_rt::System::new().block_on(seed_orders(base, &firsts, a.orders))?;
    }
    println!(
        "mode=setup tenants={} users={} orders_per_tenant={} out={}",
        a.tenants,
        lines.len(),
        a.orders,
        a.out.display()
    );
    Ok(())
}

async fn seed_orders(base: &str, firsts: &[UserLine], orders: usize) -> anyhow::Result<()> {
    let signed = client::login_all(base, firsts).await?;
    let http = client::http();
    for s in &signed {
        for i in 0..orders {
            let body = serde_json::json!({
                "items": [{"name": format!("item {i}"), "quantity": 1 + (i % 3), "unit_price_cents": 250}],
                "note": "seed",
            });
            let url = format!("{base}/api/v1/tenants/{}/orders", s.tenant_id);
            let res = http.post(url).bearer_auth(&s.token).send_json(&body).await;
            let ok = matches!(&res, Ok(r) if r.status().as_u16() == 201);
            anyhow::ensure!(ok, "seeding an order failed: {:?}", res.map(|r| r.status()));
        }
    }
    Ok(())
}
