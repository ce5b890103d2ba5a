//! A real browser: Debian's headless `chromium`, driven by `chromedriver` over W3C WebDriver
//! (plain HTTP and JSON, through reqwest). chromedriver runs on a free loopback port in its own
//! process group, and that group (chromedriver and every chromium process it started) is killed
//! on drop.

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use super::{POLL, free_port, http, wait_for, wait_http_ok};

/// The W3C name of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One chromium session.
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    client: reqwest::Client,
    log: tempfile::NamedTempFile,
}

/// A WebDriver command that failed: the error code (`stale element reference`, …) and message.
#[derive(Debug)]
pub struct Failed {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

impl Browser {
    /// Starts chromedriver and a headless chromium of `width` × `height` CSS pixels, with or
    /// without JavaScript for pages (WebDriver's own scripts run either way).
    pub async fn start(javascript: bool, width: u32, height: u32) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log"))
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver (apt-get install chromium chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        wait_http_ok("chromedriver to be ready", &format!("{base}/status")).await;
        let mut args = vec![
            "--headless=new".to_owned(),
            // chromium refuses its sandbox as root; the pages are our own.
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={width},{height}"),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
        }
        let client = http();
        let answer: Value = client
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "goog:chromeOptions": {"args": args},
                "timeouts": {"pageLoad": 20_000, "script": 10_000},
            }}}))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("POST /session")
            .json()
            .await
            .expect("a JSON answer");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Self {
            driver,
            session: format!("{base}/session/{id}"),
            client,
            log,
        }
    }

    /// Sends one command; the answer's `value`, or the WebDriver error.
    async fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failed> {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.client.get(&url),
            "DELETE" => self.client.delete(&url),
            _ => self
                .client
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| Failed {
                error: "request failed".into(),
                message: format!("{method} {path}: {e}"),
            })?;
        let ok = response.status().is_success();
        let answer: Value = response.json().await.map_err(|e| Failed {
            error: "not JSON".into(),
            message: e.to_string(),
        })?;
        let value = answer["value"].clone();
        if ok {
            Ok(value)
        } else {
            Err(Failed {
                error: value["error"].as_str().unwrap_or("unknown").to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    /// Like [`Self::command`], for commands that must succeed.
    async fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.command(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!(
                "WebDriver {method} {path} failed: {e}\nchromedriver log:\n{}",
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            ),
        }
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn current_url(&self) -> String {
        let v = self.must("GET", "/url", None).await;
        v.as_str().expect("a URL").to_owned()
    }

    pub async fn back(&self) {
        self.must("POST", "/back", None).await;
    }

    /// The elements matching `css`, in document order.
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .must(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .expect("an array of elements")
            .iter()
            .map(|e| {
                e[ELEMENT]
                    .as_str()
                    .expect("an element reference")
                    .to_owned()
            })
            .collect()
    }

    /// The first element matching `css`; panics when there is none.
    pub async fn find(&self, css: &str) -> String {
        self.find_all(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    /// The rendered text of `element`.
    pub async fn text(&self, element: &str) -> String {
        let v = self
            .must("GET", &format!("/element/{element}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// A DOM property of `element` (`value` of an input, …).
    pub async fn property(&self, element: &str, name: &str) -> Value {
        self.must("GET", &format!("/element/{element}/property/{name}"), None)
            .await
    }

    /// Replaces the text of the input `css` with `text`, as a user types it.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        self.must("POST", &format!("/element/{input}/clear"), None)
            .await;
        self.must(
            "POST",
            &format!("/element/{input}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks the first element matching `css`. A script may replace the element between
    /// finding and clicking it (the page's refresh): then it is found again.
    pub async fn click(&self, css: &str) {
        wait_for(
            &format!("a click on {css}"),
            Duration::from_secs(10),
            POLL,
            || async {
                let element = self.find(css).await;
                self.command("POST", &format!("/element/{element}/click"), None)
                    .await
                    .map(|_| ())
            },
        )
        .await;
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub async fn execute(&self, script: &str) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The table's rows as the user sees them, one string per cell, read in one step so a
    /// refresh cannot tear them. Placeholder rows ("No archived events …") are left out.
    pub async fn rows(&self) -> Vec<Vec<String>> {
        let v = self
            .execute(
                "return [...document.querySelectorAll('tbody tr:not(.none)')]\
                 .map(r => [...r.cells].map(c => c.innerText));",
            )
            .await;
        serde_json::from_value(v).expect("rows of cell texts")
    }

    /// Saves a PNG of the viewport at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.must("GET", "/screenshot", None).await;
        let png = base64_decode(v.as_str().expect("base64 PNG"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Ends the session: chromium exits and its temporary profile is removed.
    pub async fn quit(mut self) {
        let _ = self.command("DELETE", "", None).await;
        self.kill();
    }

    fn kill(&mut self) {
        // The group: chromedriver and every chromium process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Standard base64 (WebDriver's screenshots), without padding checks.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
    assert_eq!(base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}
