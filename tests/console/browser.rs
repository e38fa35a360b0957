//! Headless Chromium through chromedriver (WebDriver), one of each per test: chromedriver on a
//! free port, a session with a fixed window size, and waits that poll the DOM until a deadline.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thirtyfour::prelude::*;

use crate::helpers::{free_port, listening_within};

/// How long the page may take to show what a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Browser {
    driver: Option<WebDriver>,
    chromedriver: Child,
}

impl Browser {
    /// A new headless Chromium of `width`×`height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Self {
        let port = free_port();
        let chromedriver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed: run ./tests/run, which installs it (apt-get install chromium chromium-driver)");
        assert!(listening_within(port, Duration::from_secs(10)), "chromedriver did not start");
        let mut caps = DesiredCapabilities::chrome();
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--hide-scrollbars",
        ] {
            caps.add_arg(arg).unwrap();
        }
        caps.add_arg(&format!("--window-size={width},{height}")).unwrap();
        if std::path::Path::new("/usr/bin/chromium").exists() {
            caps.set_binary("/usr/bin/chromium").unwrap();
        }
        let driver = WebDriver::new(format!("http://127.0.0.1:{port}"), caps).await.unwrap();
        Self { driver: Some(driver), chromedriver }
    }

    pub fn driver(&self) -> &WebDriver {
        self.driver.as_ref().unwrap()
    }

    /// Ends the session (closing Chromium) before chromedriver is stopped.
    pub async fn quit(mut self) {
        if let Some(driver) = self.driver.take() {
            driver.quit().await.unwrap();
        }
    }

    /// The text of the first element `css` selects, once it contains `needle`.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.driver().find(By::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            assert!(Instant::now() < deadline, "{css} never showed {needle:?}; it shows {last:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements `css` selects, once at least `n`.
    pub async fn wait_for_count(&self, css: &str, n: usize) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self.driver().find_all(By::Css(css)).await.map(|v| v.len()).unwrap_or(0);
            if found >= n {
                return found;
            }
            assert!(Instant::now() < deadline, "{css}: {found} elements, never {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.driver().find(By::Css(css)).await.unwrap().click().await.unwrap();
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.driver().find(By::Css(css)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    /// Clicks a control, then Confirm in the dialog it opens.
    pub async fn click_and_confirm(&self, css: &str) {
        self.click(css).await;
        self.wait_for_count("dialog#confirm[open]", 1).await;
        self.click("#confirm-ok").await;
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.driver().execute(script, Vec::new()).await.unwrap().json().clone()
    }

    /// A screenshot into `docs/console-NAME.png` when `CONSOLE_SCREENSHOTS=1`.
    pub async fn screenshot(&self, name: &str) {
        if std::env::var("CONSOLE_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/console-{name}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // The whole page, from the top, without a caret: the window grows to the page's height
        // for the picture (the browser's own frame is the difference between the two heights).
        self.eval("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)").await;
        let driver = self.driver();
        let rect = driver.get_window_rect().await.unwrap();
        let frame = rect.height - self.eval("return window.innerHeight").await.as_i64().unwrap();
        let page = self.eval("return document.documentElement.scrollHeight").await.as_i64().unwrap();
        driver
            .set_window_rect(rect.x, rect.y, rect.width as u32, (page + frame).min(2400) as u32)
            .await
            .unwrap();
        driver.screenshot(&path).await.unwrap();
        driver.set_window_rect(rect.x, rect.y, rect.width as u32, rect.height as u32).await.unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.chromedriver.kill().ok();
        self.chromedriver.wait().ok();
    }
}
