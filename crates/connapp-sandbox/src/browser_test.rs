//! The consent page clicked through by a real headless Chromium (driven over
//! WebDriver by Debian's chromedriver), with the code arriving at a loopback
//! redirect listener. `cargo xtask test` installs Chromium and runs this.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::state::{App, AppKind, Usage};
use crate::{Sandbox, Seed};

struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn which(bin: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| format!("{d}/{bin}"))
        .find(|p| std::path::Path::new(p).exists())
}

async fn start_driver(http: &reqwest::Client) -> Driver {
    let exe =
        which("chromedriver").expect("chromedriver not found: run `cargo xtask test`, which installs chromium-driver");
    let port = free_port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let d = Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{}/status", d.base)).send().await
            && r.status().is_success()
        {
            return d;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wd(http: &reqwest::Client, method: reqwest::Method, url: String, body: Value) -> Value {
    let req = http.request(method.clone(), &url);
    let req = if method == reqwest::Method::GET {
        req
    } else {
        req.json(&body)
    };
    let r = req.send().await.expect("webdriver");
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert!(status.is_success(), "{url}: {status} {v}");
    v["value"].clone()
}

/// The key of a W3C WebDriver element reference ("Elements", web element identifier).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Clicks the element `css` selects in session `s`.
async fn click(http: &reqwest::Client, s: &str, css: &str) {
    let found = json!({"using": "css selector", "value": css});
    let el = wd(http, reqwest::Method::POST, format!("{s}/element"), found).await;
    let id = el[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {el}"));
    wd(
        http,
        reqwest::Method::POST,
        format!("{s}/element/{id}/click"),
        json!({}),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver; `cargo xtask test` installs them and runs this"]
async fn consent_page_clicked_through_in_headless_chromium() {
    let sbx = Sandbox::start(Seed::default()).expect("sandbox");
    let http = crate::webhooks::client_builder().build().expect("client");
    // An app whose allow list has a loopback redirect (the port is ignored).
    let app = App {
        app_id: "sbxAppLoopback00000003".into(),
        name: "connapp login test".into(),
        kind: AppKind::General,
        usage: Usage::AdminManagement,
        client_id: "sbxLoopbackClient00003".into(),
        client_secret: "loopback-secret".into(),
        secret_token: "loopback-token".into(),
        redirect_urls: vec!["http://127.0.0.1/callback".into()],
        allow_list: vec!["http://127.0.0.1/callback".into()],
        strict_mode: true,
        subdomain_check: false,
        scopes: vec!["user:read:user:admin".into()],
        ..App::default()
    };
    let r = http
        .post(format!("{}/_sandbox/apps", sbx.base_url()))
        .json(&app)
        .send()
        .await
        .expect("add app");
    assert!(r.status().is_success());

    // The loopback listener that receives the redirect.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut s = stream;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 33\r\n\r\n<h1>connapp: you can close</h1>\r\n");
            let _ = tx.send(line);
        }
    });

    let driver = start_driver(&http).await;
    let profile = std::env::temp_dir().join(format!("connapp-chromium-{}", std::process::id()));
    let chromium = which("chromium")
        .or_else(|| which("chromium-browser"))
        .expect("chromium not found");
    let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display())]
    }}}});
    let session = wd(&http, reqwest::Method::POST, format!("{}/session", driver.base), caps).await;
    let sid = session["sessionId"].as_str().expect("session id").to_string();
    let s = format!("{}/session/{sid}", driver.base);

    let redirect = format!("http://127.0.0.1:{port}/callback");
    let authorize = format!(
        "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&state=st123",
        sbx.base_url(),
        app.client_id,
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    wd(
        &http,
        reqwest::Method::POST,
        format!("{s}/url"),
        json!({"url": authorize}),
    )
    .await;
    let title = wd(&http, reqwest::Method::GET, format!("{s}/title"), json!(null)).await;
    assert_eq!(title, "Authorize app");
    click(&http, &s, "#user option[value='admin']").await;
    // Keep a picture of the page for people reviewing the sandbox.
    if let Some(png) = wd(&http, reqwest::Method::GET, format!("{s}/screenshot"), json!(null))
        .await
        .as_str()
    {
        use base64::Engine;
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(png) {
            let _ = std::fs::write(std::env::temp_dir().join("connapp-consent.png"), bytes);
        }
    }
    click(&http, &s, "#allow").await;

    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the browser reached the loopback redirect");
    let _ = http.delete(&s).send().await;
    let _ = std::fs::remove_dir_all(&profile);
    assert!(line.starts_with("GET /callback?code="), "{line}");
    assert!(line.contains("state=st123"), "{line}");
    let code = line
        .split("code=")
        .nth(1)
        .and_then(|r| r.split(['&', ' ']).next())
        .expect("code")
        .to_string();

    // The code the browser carried is good at the token endpoint.
    let r = http
        .post(format!("{}/oauth/token", sbx.base_url()))
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["scope"], "user:read:user:admin");
}
