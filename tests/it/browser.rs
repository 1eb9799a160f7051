//! End-to-end tests in headless Chromium, and the [`Browser`] harness they share.
//!
//! A [`Browser`] starts its own `chromedriver` on a free port, which starts a Chromium with a
//! throwaway profile. The test speaks WebDriver to it through fantoccini. Dropping the
//! [`Browser`] stops both processes and deletes the profile, even when the test panics. Every
//! browser call has a timeout. When a wait fails, the harness saves a screenshot and puts the
//! page's text and the browser console into the panic message, so a broken page explains itself.
//!
//! A test reads like what a student does with the page:
//!
//! ```ignore
//! let relay = TestRelay::start().await;
//! let browser = Browser::open(&format!("http://{}/", relay.http())).await;
//! browser.wait_for(READY, Browser::LOAD).await;
//! browser.fill("#echo input", "hello").await;
//! browser.click("#echo button").await;
//! browser.wait_for_text("#echo .log", "hello", STEP).await;
//! browser.screenshot("echo").await;
//! browser.close().await;
//! relay.shutdown().await;
//! ```
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver` packages, which
//! `./scripts/test` installs. Set `CHROMIUM` or `CHROMEDRIVER` to use other binaries.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status line once the wasm start function has run.
const READY: &str = "#status[data-state=ready]";

/// Command-line flags for Chromium. Without the `--disable-*` flags, Chromium on these machines
/// stalls while it tries to reach Google's update, sync and QUIC services.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// Where [`Browser::screenshot`] writes: `target/screenshots/`, so a test run never dirties
/// the work tree. The README's pictures are curated copies in `docs/screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("screenshots")
}

#[tokio::test]
async fn the_page_loads_and_the_wasm_ui_starts() {
    use crate::support::TestRelay;

    let relay = TestRelay::start().await;
    let browser = Browser::open(&format!("http://{}/", relay.http())).await;

    browser.wait_for(READY, Browser::LOAD).await;
    // Once running, the status line shows the connection to the relay instead of "Loading".
    assert!(!browser.text("#status").await.starts_with("Loading"), "the status still says loading");
    assert_eq!(browser.attr("#status", "data-state").await.as_deref(), Some("ready"));

    let shot = browser.screenshot("page").await;
    let png = fs::read(&shot).expect("the screenshot was just written");
    assert!(png.starts_with(b"\x89PNG"), "{} is not a PNG", shot.display());

    browser.close().await;
    relay.shutdown().await;
}

/// A headless Chromium driven over WebDriver, with its own chromedriver and profile.
///
/// Methods take CSS selectors and panic with a diagnosis on failure, so tests stay short. For
/// anything the helpers lack, [`Browser::client`] is the fantoccini client; wrap its awaits in
/// [`Browser::limit`].
pub struct Browser {
    // Field order is drop order: the session, then chromedriver (which quits Chromium), and
    // only then the profile directory Chromium was writing to.
    client: Client,
    driver: Chromedriver,
    scratch: Scratch,
    /// Console entries read so far. Chromedriver hands each entry out only once, so they are
    /// kept here for [`Browser::console`] and failure reports. A std mutex: never held across
    /// an await.
    console: Mutex<Vec<ConsoleEntry>>,
}

/// One message from the page's console, or a failed resource load.
#[derive(Clone, Debug, Deserialize)]
pub struct ConsoleEntry {
    /// `SEVERE` for `console.error` and failed loads, `WARNING`, `INFO` for `console.log`.
    pub level: String,
    pub message: String,
}

/// The page has connected to the relay and had its `hello`.
pub const CONNECTED: &str = "#status[data-conn=open]";

/// One step of the page reacting to traffic. Generous: the browser shares two cores with
/// compilers.
pub const WAIT: Duration = Duration::from_secs(15);

impl Browser {
    /// Starting chromedriver and Chromium. A cold start on a busy 2-core machine takes seconds.
    pub const BOOT: Duration = Duration::from_secs(60);
    /// Loading a page and starting its wasm.
    pub const LOAD: Duration = Duration::from_secs(30);
    /// One WebDriver command. More than `support::STEP`: a browser sharing two cores with a
    /// compiler answers slower than a socket does.
    pub const COMMAND: Duration = Duration::from_secs(15);
    /// How often the `wait_*` methods look again.
    const POLL: Duration = Duration::from_millis(50);

    /// Starts a browser on `about:blank`.
    ///
    /// Panics, telling the reader to run `./scripts/test`, if Chromium or chromedriver is not
    /// installed: a browser test never skips silently.
    pub async fn launch() -> Browser {
        let chromium = find_program("CHROMIUM", "chromium", "chromium");
        let chromedriver = find_program("CHROMEDRIVER", "chromedriver", "chromium-driver");
        let scratch = Scratch::new();
        let driver = Chromedriver::start(&chromedriver, &scratch).await;

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
        args.push(format!("--user-data-dir={}", scratch.path().join("profile").display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
            "timeouts": {
                "pageLoad": Self::LOAD.as_millis(),
                "script": Self::COMMAND.as_millis(),
                "implicit": 0,
            },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("json! of an object") };

        // Chromedriver speaks plain HTTP on loopback: no TLS needed.
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let url = driver.url();
        let connected =
            Self::limit("chromedriver starting Chromium", Self::BOOT, builder.connect(&url)).await;
        let client = connected.unwrap_or_else(|err| {
            panic!("chromedriver could not start {}: {err}\n{}", chromium.display(), scratch.log())
        });
        Browser { client, driver, scratch, console: Mutex::new(Vec::new()) }
    }

    /// Starts a browser and loads `url`.
    pub async fn open(url: &str) -> Browser {
        let browser = Self::launch().await;
        browser.goto(url).await;
        browser
    }

    /// Loads `url` and waits for its `load` event (not for the wasm: use [`Browser::wait_for`]).
    pub async fn goto(&self, url: &str) {
        let what = format!("loading {url}");
        if let Err(err) = Self::limit(&what, Self::LOAD, self.client.goto(url)).await {
            self.fail(&format!("{what}: {err}")).await;
        }
    }

    /// Waits until an element matches `css`, and returns it.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let started = Instant::now();
        loop {
            match self.try_find(css).await {
                Ok(Some(element)) => return element,
                Ok(None) => {}
                Err(err) => self.fail(&format!("looking for `{css}`: {err}")).await,
            }
            if started.elapsed() >= timeout {
                self.fail(&format!("no element matched `{css}` within {timeout:?}")).await;
            }
            tokio::time::sleep(Self::POLL).await;
        }
    }

    /// Waits until the text of the first element matching `css` contains `needle`, and returns
    /// the whole text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        let mut last = None;
        loop {
            if let Ok(Some(element)) = self.try_find(css).await {
                let what = format!("reading the text of `{css}`");
                match Self::limit(&what, Self::COMMAND, element.text()).await {
                    Ok(text) if text.contains(needle) => return text,
                    Ok(text) => last = Some(text),
                    // The element was replaced between finding and reading it: look again.
                    Err(err) if err.is_stale_element_reference() => {}
                    Err(err) => self.fail(&format!("reading the text of `{css}`: {err}")).await,
                }
            }
            if started.elapsed() >= timeout {
                let seen = match last {
                    Some(text) => format!("its text was {text:?}"),
                    None => "no element matched".to_owned(),
                };
                self.fail(&format!("`{css}` did not contain {needle:?} within {timeout:?}; {seen}")).await;
            }
            tokio::time::sleep(Self::POLL).await;
        }
    }

    /// The first element matching `css`, which must exist now.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Ok(Some(element)) => element,
            Ok(None) => self.fail(&format!("no element matches `{css}`")).await,
            Err(err) => self.fail(&format!("looking for `{css}`: {err}")).await,
        }
    }

    /// Every element matching `css`, in document order; possibly none.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let what = format!("looking for every `{css}`");
        match Self::limit(&what, Self::COMMAND, self.client.find_all(Locator::Css(css))).await {
            Ok(elements) => elements,
            Err(err) => self.fail(&format!("{what}: {err}")).await,
        }
    }

    /// The `textContent` of every element matching `css`, in document order; possibly none.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent);";
        let value = self.eval(script, vec![json!(css)]).await;
        serde_json::from_value(value).expect("a list of strings")
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let what = format!("reading the text of `{css}`");
        match Self::limit(&what, Self::COMMAND, element.text()).await {
            Ok(text) => text,
            Err(err) => self.fail(&format!("{what}: {err}")).await,
        }
    }

    /// The text of the first element matching `css` as laid out (`innerText`), whether it is
    /// shown or kept for screen readers only, as the lanes' list is on a short screen.
    pub async fn dom_text(&self, css: &str) -> String {
        self.find(css).await;
        let text =
            self.eval("return document.querySelector(arguments[0]).innerText;", vec![json!(css)]).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute of the first element matching `css`; `None` if the element lacks it.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css).await;
        let what = format!("reading attribute `{name}` of `{css}`");
        match Self::limit(&what, Self::COMMAND, element.attr(name)).await {
            Ok(value) => value,
            Err(err) => self.fail(&format!("{what}: {err}")).await,
        }
    }

    /// Clicks the first element matching `css`, as a user would.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        let what = format!("clicking `{css}`");
        if let Err(err) = Self::limit(&what, Self::COMMAND, element.click()).await {
            self.fail(&format!("{what}: {err}")).await;
        }
    }

    /// Replaces the value of the input matching `css` by typing `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let what = format!("typing {text:?} into `{css}`");
        let typed = async {
            element.clear().await?;
            element.send_keys(text).await
        };
        if let Err(err) = Self::limit(&what, Self::COMMAND, typed).await {
            self.fail(&format!("{what}: {err}")).await;
        }
    }

    /// Runs `script` as the body of a function in the page and returns its result as JSON.
    /// The `args` are available to the script as `arguments[0]`, `arguments[1]`, ...
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        let what = format!("running script {script:?}");
        match Self::limit(&what, Self::COMMAND, self.client.execute(script, args)).await {
            Ok(value) => value,
            Err(err) => self.fail(&format!("{what}: {err}")).await,
        }
    }

    /// Runs a Chrome DevTools Protocol command (`Performance.getMetrics`, `Profiler.start`)
    /// through chromedriver, and returns its result.
    #[allow(dead_code, reason = "the benchmarks use it (classroom), the tests do not yet")]
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let what = format!("DevTools command {cmd}");
        let command = Cdp { cmd: cmd.to_owned(), params };
        match Self::limit(&what, Self::COMMAND, self.client.issue_cmd(command)).await {
            Ok(value) => value,
            Err(err) => self.fail(&format!("{what}: {err}")).await,
        }
    }

    /// Everything the page has logged to its console so far, oldest first.
    pub async fn console(&self) -> Vec<ConsoleEntry> {
        match self.read_console().await {
            Ok(entries) => entries,
            Err(err) => panic!("reading the browser console: {err}"),
        }
    }

    /// Saves a PNG of the viewport as `target/screenshots/NAME.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let what = format!("taking screenshot {name:?}");
        match Self::limit(&what, Self::COMMAND, self.client.screenshot()).await {
            Ok(png) => save_png(name, &png),
            Err(err) => self.fail(&format!("{what}: {err}")).await,
        }
    }

    /// Sizes the window so its viewport is `width` × `height` CSS pixels, as a laptop
    /// (1,400 × 900) or a projector (1,920 × 1,080) shows the page.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let what = format!("sizing the window to {width}x{height}");
        if let Err(err) = Self::limit(&what, Self::COMMAND, self.client.set_window_size(width, height)).await
        {
            self.fail(&format!("{what}: {err}")).await;
        }
        // The window's frame, if any, takes from the viewport: grow the window by it.
        let inner = self.eval("return [window.innerWidth, window.innerHeight];", vec![]).await;
        let (w, h) = (inner[0].as_u64().unwrap_or(0) as u32, inner[1].as_u64().unwrap_or(0) as u32);
        if (w, h) != (width, height) && w > 0 && h > 0 {
            let (w2, h2) = (width + width.saturating_sub(w), height + height.saturating_sub(h));
            if let Err(err) = Self::limit(&what, Self::COMMAND, self.client.set_window_size(w2, h2)).await {
                self.fail(&format!("{what}: {err}")).await;
            }
        }
    }

    /// The fantoccini client, for what the helpers above do not cover. Put every await on it
    /// under [`Browser::limit`].
    #[allow(dead_code, reason = "an escape hatch for future tests; no test needs it yet")]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the WebDriver session and stops chromedriver and Chromium. Dropping the browser
    /// does the same, less politely.
    pub async fn close(self) {
        let Browser { client, driver, scratch, console: _ } = self;
        if let Err(err) = Self::limit("closing the browser", Self::COMMAND, client.close()).await {
            panic!("closing the browser: {err}");
        }
        drop(driver);
        drop(scratch);
    }

    /// Awaits `fut`, failing the test with `what` if it takes longer than `limit`.
    pub async fn limit<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
        tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| panic!("timed out after {limit:?}: {what}"))
    }

    /// The first element matching `css`, or `None` if there is none yet.
    async fn try_find(&self, css: &str) -> Result<Option<Element>, CmdError> {
        let what = format!("looking for `{css}`");
        match Self::limit(&what, Self::COMMAND, self.client.find(Locator::Css(css))).await {
            Ok(element) => Ok(Some(element)),
            Err(err) if err.is_no_such_element() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Reads new console entries from chromedriver and returns every entry seen so far.
    async fn read_console(&self) -> Result<Vec<ConsoleEntry>, String> {
        let fresh = Self::limit("reading the browser console", Self::COMMAND, self.client.issue_cmd(GetLog))
            .await
            .map_err(|err| err.to_string())?;
        let fresh: Vec<ConsoleEntry> = serde_json::from_value(fresh).map_err(|err| err.to_string())?;
        let mut seen = self.console.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.extend(fresh);
        Ok(seen.clone())
    }

    /// Fails the test with `problem`, after saving a screenshot named after the test and
    /// gathering the page's URL, text and console into the message.
    async fn fail(&self, problem: &str) -> ! {
        let report = self.diagnose().await;
        panic!("{problem}\n{report}")
    }

    /// What the page looks like now, as far as a broken browser still lets us see. Each part
    /// is best effort, under a short timeout, so a hung browser cannot hang the report.
    async fn diagnose(&self) -> String {
        let quick = Duration::from_secs(5);
        let mut report = String::new();

        let url = tokio::time::timeout(quick, self.client.current_url()).await;
        match url {
            Ok(Ok(url)) => report.push_str(&format!("page: {url}\n")),
            _ => report.push_str("page: (unknown: the browser did not answer)\n"),
        }

        let script = "return document.body ? document.body.innerText : document.documentElement.outerHTML";
        if let Ok(Ok(Value::String(text))) =
            tokio::time::timeout(quick, self.client.execute(script, vec![])).await
        {
            let text: String = text.chars().take(2000).collect();
            report.push_str(&format!("page text:\n{}\n", indent(&text)));
        }

        match tokio::time::timeout(quick, self.read_console()).await {
            Ok(Ok(entries)) if entries.is_empty() => report.push_str("console: (empty)\n"),
            Ok(Ok(entries)) => {
                report.push_str("console:\n");
                for entry in entries {
                    report.push_str(&format!("    {} {}\n", entry.level, entry.message));
                }
            }
            Ok(Err(err)) => report.push_str(&format!("console: (unreadable: {err})\n")),
            Err(_) => report.push_str("console: (unreadable: timed out)\n"),
        }

        let name = format!("{}-failure", test_name());
        match tokio::time::timeout(quick, self.client.screenshot()).await {
            Ok(Ok(png)) => report.push_str(&format!("screenshot: {}\n", save_png(&name, &png).display())),
            _ => report.push_str("screenshot: (the browser did not give one)\n"),
        }

        report.push_str(&self.scratch.log());
        report
    }
}

/// Chromedriver's `POST /session/{id}/se/log` with type `browser`: the console entries since
/// the last call. It is a Chromium extension that fantoccini does not wrap.
#[derive(Debug)]
struct GetLog;

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

/// Chromedriver's `POST /session/{id}/goog/cdp/execute`: one DevTools Protocol command, for
/// the benchmarks' measures of the page's own work (script, layout and style time).
#[derive(Debug)]
#[allow(dead_code, reason = "the benchmarks use it (classroom), the tests do not yet")]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()))
    }
}

/// A running chromedriver. Dropping it stops chromedriver and the Chromium it started.
struct Chromedriver {
    process: Child,
    port: u16,
}

impl Chromedriver {
    /// How many times to try a fresh port if chromedriver cannot use the one it was given.
    const ATTEMPTS: u32 = 3;

    /// Starts chromedriver on a free port and waits until it is ready for sessions.
    async fn start(program: &Path, scratch: &Scratch) -> Chromedriver {
        let deadline = Instant::now() + Browser::BOOT;
        for attempt in 1..=Self::ATTEMPTS {
            // The port is free now; another process could take it before chromedriver binds it.
            // Then chromedriver exits and the next attempt picks another port.
            let port = free_port();
            let log = File::create(scratch.log_path()).expect("create the chromedriver log file");
            let process = Command::new(program)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log file handle"))
                .stderr(log)
                // Its own process group, so that dropping it can stop Chromium's helpers too.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
            let mut driver = Chromedriver { process, port };
            if driver.wait_until_ready(deadline).await {
                return driver;
            }
            drop(driver);
            if Instant::now() >= deadline {
                break;
            }
            eprintln!("chromedriver did not start on port {port} (attempt {attempt}); trying another port");
        }
        panic!(
            "chromedriver ({}) did not become ready within {:?}\n{}",
            program.display(),
            Browser::BOOT,
            scratch.log()
        )
    }

    /// The WebDriver endpoint.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Polls `GET /status` until chromedriver says it is ready. False if it exits or the
    /// deadline passes first.
    async fn wait_until_ready(&mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if !matches!(self.process.try_wait(), Ok(None)) {
                return false;
            }
            let answer = tokio::time::timeout(Duration::from_secs(2), http_get(self.port, "/status")).await;
            if let Ok(Some(body)) = answer
                && body.contains("\"ready\":true")
            {
                return true;
            }
            tokio::time::sleep(Browser::POLL).await;
        }
        false
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // Ask politely: chromedriver's `/shutdown` quits every session's Chromium, then itself.
        let _ = shutdown_request(self.port);
        let patience = Instant::now() + Duration::from_secs(3);
        while Instant::now() < patience {
            if let Ok(Some(_)) = self.process.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Then insist, on the whole group: Chromium's zygote helpers can outlive chromedriver.
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A directory of our own under the system temp dir: Chromium's profile and chromedriver's
/// log. Removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique =
            format!("udp-playground-browser-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(unique);
        // A leftover from a killed earlier run with the same pid would hold a stale profile.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()));
        Scratch(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn log_path(&self) -> PathBuf {
        self.0.join("chromedriver.log")
    }

    /// The end of chromedriver's log, for failure messages.
    fn log(&self) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        if tail.is_empty() {
            "chromedriver log: (empty)\n".to_owned()
        } else {
            format!("chromedriver log (last {} lines):\n{}\n", tail.len(), indent(&tail.join("\n")))
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Chromium's last helpers may still be writing for a moment after they are killed.
        for _ in 0..5 {
            if fs::remove_dir_all(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Finds a program from its environment variable, else on `PATH`. Panics with the fix if absent.
fn find_program(env_var: &str, name: &str, package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return path;
        }
        panic!(
            "{env_var} is set to {}, which does not exist. Unset it and run `./scripts/test`, which \
             installs Debian's `chromium` and `chromium-driver` packages.",
            path.display()
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(OsStr::new(name)))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed, and the browser tests need it. Run `./scripts/test`, which \
             installs Debian's `chromium` and `chromium-driver` packages (or install `{package}` \
             yourself, or set {env_var} to the program's path)."
        )
    })
}

/// A TCP port that was free a moment ago: bind port 0, read the port, let it go.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("a bound listener has an address").port()
}

/// A minimal HTTP/1.1 GET on loopback; the body if the answer is 200, else `None`.
async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.ok()?;
    stream.write_all(get_request(port, path).as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Chromedriver answers `Connection: close` but keeps the connection open, so the end of
        // the answer is found from its Content-Length, not from the end of the stream.
        if let Some((status, body)) = parse_answer(&answer) {
            return (status == 200).then_some(body);
        }
        match stream.read(&mut chunk).await.ok()? {
            0 => return None,
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// `GET /shutdown`, blocking with short timeouts: it runs from `Drop`, which cannot await.
fn shutdown_request(port: u16) -> std::io::Result<()> {
    let timeout = Duration::from_secs(1);
    let mut stream = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(get_request(port, "/shutdown").as_bytes())?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while parse_answer(&answer).is_none() {
        match stream.read(&mut chunk)? {
            0 => break,
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(())
}

fn get_request(port: u16, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
}

/// The status code and body of a complete HTTP answer with a Content-Length; `None` until
/// all of it has arrived.
fn parse_answer(answer: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    (body.len() >= length).then(|| (status, body.to_owned()))
}

/// Writes `target/screenshots/NAME.png`, via a `.tmp` file so a reader never sees half a PNG.
fn save_png(name: &str, png: &[u8]) -> PathBuf {
    let dir = screenshot_dir();
    fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
    let path = dir.join(format!("{name}.png"));
    let partial = dir.join(format!("{name}.png.tmp"));
    fs::write(&partial, png).unwrap_or_else(|err| panic!("cannot write {}: {err}", partial.display()));
    fs::rename(&partial, &path).unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    path
}

/// The running test's name as a file name: the test harness names each test's thread after it.
fn test_name() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("browser-test");
    name.replace("::", "-").replace(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'), "_")
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}
