//! A real headless Chromium driven through WebDriver (chromedriver + fantoccini). Each
//! `Browser` has its own driver process and a fresh profile; both go away with it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use rampart::embedded_pg::SupervisedChild;

pub struct Browser {
    pub client: Client,
    driver: SupervisedChild,
    profile: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Panics with a hint when the
    /// browser is not installed (`scripts/test.sh` installs it).
    pub async fn start() -> Browser {
        let port = free_port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"));
        // Its own process group, so the browsers it starts can be killed with it even when a
        // test panics before closing the session.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = SupervisedChild::spawn(cmd, nix::sys::signal::Signal::SIGKILL, "chromedriver")
            .expect("chromedriver not found: run scripts/test.sh, which installs chromium-driver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("rampart-chrome-{}", uuid::Uuid::new_v4()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    "--disable-breakpad", "--disable-crash-reporter",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("start a Chromium session");
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// Waits (bounded) until `css` matches an element whose text contains `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = el.text().await {
                    if t.contains(text) {
                        return t;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no {css} containing {text:?}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session (the driver and its browsers die with the value).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
