//! A real headless Chromium driven through WebDriver (chromedriver + fantoccini). Each
//! `Browser` has its own driver process and a fresh profile; both go away with it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use rampart::embedded_pg::SupervisedChild;

/// What [`Browser::intercept`] does to the matching requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Intercept<'a> {
    pub rewrite: Option<(&'a str, &'a str)>,
    pub delay_ms: u64,
    pub fail: bool,
}

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
        let profile = std::env::temp_dir().join(format!("rampart-chrome-{}", uuid::Uuid::new_v4()));
        // Chromium's own temporary files go inside the profile, which is removed with the
        // session: a browser killed at the end never cleans up after itself.
        let scratch = profile.join("tmp");
        std::fs::create_dir_all(&scratch).expect("create the browser's profile directory");
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}")).env("TMPDIR", &scratch);
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

    /// A new browser that signed in at `/` with a password and now shows the second step.
    pub async fn at_second_step(base: &str, email: &str, password: &str) -> Browser {
        let browser = Browser::start().await;
        browser.sign_in(base, email, password).await;
        browser.wait_for_text("#verify h2", "Enter your code").await;
        browser
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

    /// Waits (bounded) until the one-time secret box names `what`; returns the secret shown.
    pub async fn shown_secret(&self, what: &str) -> String {
        self.wait_for_text("#secret-what", what).await;
        let value = self.client.find(Locator::Css("#secret-value")).await;
        value.unwrap().text().await.unwrap()
    }

    /// Waits (bounded) until the table `css` shows exactly `count` body rows.
    pub async fn wait_for_rows(&self, css: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let selector = format!("{css} tbody tr");
        loop {
            let rows = self.client.find_all(Locator::Css(&selector)).await.unwrap();
            if rows.len() == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css}: {} rows, not {count}",
                rows.len()
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the field `css` (emptied first).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the element `css` once it is there and shown.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if el.is_displayed().await.unwrap_or(false) && el.click().await.is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "nothing clickable at {css}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens `/` at `base` and signs in with the password (the first step only).
    pub async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.client.goto(&format!("{base}/")).await.unwrap();
        self.wait_for_text("#login-form h2", "Sign in").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("#login-submit").await;
    }

    /// Waits (bounded) until the dashboard is open and its socket is live.
    pub async fn wait_for_live_dashboard(&self) {
        self.wait_for_path("/dashboard.html").await;
        self.wait_for_text("#conn-status", "live").await;
    }

    /// Starts a browser, signs in at `/` with a password-only tenant account and waits for the
    /// live dashboard.
    pub async fn on_dashboard(base: &str, email: &str, password: &str) -> Browser {
        let browser = Browser::start().await;
        browser.sign_in(base, email, password).await;
        browser.wait_for_live_dashboard().await;
        browser
    }

    /// Waits (bounded) until the page's path is `path` and its document has loaded.
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(url) = self.client.current_url().await {
                if url.path() == path {
                    let ready = self
                        .client
                        .execute("return document.readyState", vec![])
                        .await
                        .ok();
                    if ready.as_ref().and_then(|v| v.as_str()) == Some("complete") {
                        return;
                    }
                }
            }
            let now = self.client.current_url().await.ok();
            assert!(
                Instant::now() < deadline,
                "never reached {path} (at {now:?})"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until `css` matches an element that is shown.
    pub async fn wait_for_shown(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if el.is_displayed().await.unwrap_or(false) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{css} never shown");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new browser holding the session of `token`, opened at `path` of `base`.
    pub async fn open_as(base: &str, token: &str, path: &str) -> Browser {
        let browser = Browser::start().await;
        browser.use_session(base, token).await;
        browser.client.goto(&format!("{base}{path}")).await.unwrap();
        browser
    }

    /// Gives the browser the session of `token` (as if it had signed in at `/`).
    pub async fn use_session(&self, base: &str, token: &str) {
        self.client.goto(&format!("{base}/app.css")).await.unwrap();
        let set = format!("document.cookie = 'rampart_session={token}; path=/; SameSite=Strict'");
        self.client.execute(&set, vec![]).await.unwrap();
    }

    /// The value of the session cookie the sign-in set (HttpOnly: pages never see it).
    pub async fn session_token(&self) -> String {
        self.client
            .get_named_cookie("rampart_session")
            .await
            .expect("the session cookie")
            .value()
            .to_string()
    }

    /// Asserts that the page keeps nothing in web storage (no token, no challenge).
    pub async fn assert_no_web_storage(&self) {
        let left = self
            .client
            .execute(
                "return [sessionStorage.length, localStorage.length]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(left, serde_json::json!([0, 0]), "web storage used");
    }

    /// Changes the open page's requests whose URL contains `part` (until the page is left):
    /// `rewrite` replaces text in their URL (e.g. a smaller `limit=`), `delay_ms` holds them
    /// back, and `fail` makes them fail as a lost network would. Pages send every request
    /// through the global `fetch`, which this wraps; later calls add rules.
    pub async fn intercept(&self, part: &str, rule: Intercept<'_>) {
        const WRAP: &str = r#"
            const [part, from, to, delayMs, fail] = arguments;
            const previous = window.fetch;
            window.fetch = async (input, init) => {
              let url = typeof input === "string" ? input : input.url;
              if (url.includes(part)) {
                if (from) url = url.split(from).join(to);
                if (delayMs) await new Promise((done) => setTimeout(done, delayMs));
                if (fail) throw new TypeError("failed by the test");
                return previous(url, init);
              }
              return previous(input, init);
            };"#;
        let (from, to) = rule.rewrite.unwrap_or(("", ""));
        let args = vec![
            part.into(),
            from.into(),
            to.into(),
            rule.delay_ms.into(),
            rule.fail.into(),
        ];
        self.client.execute(WRAP, args).await.unwrap();
    }

    /// The value of `expression` evaluated in the open page.
    pub async fn eval(&self, expression: &str) -> serde_json::Value {
        self.client
            .execute(&format!("return {expression};"), vec![])
            .await
            .unwrap()
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
