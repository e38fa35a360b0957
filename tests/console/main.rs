//! The release console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, `thirtyfour`) against the real service (`spawn_app`, as the API suite builds it).
//! Each test asserts what a user sees: text in the page, the chart's SVG marks. With
//! `CONSOLE_SCREENSHOTS=1` the main pages are also saved as `docs/console-*.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../api/helpers.rs"]
mod helpers;

mod browser;

use std::time::Instant;

use chrono::Utc;
use nowatch_ota::services::rollout_engine::tick;
use serde_json::json;

use browser::Browser;
use helpers::{TestApp, image_bytes, offered_version, publish, spawn_app, upload_ok};

async fn sign_in(browser: &Browser, app: &TestApp, token: &str) {
    browser.driver().goto(app.url("/console/")).await.unwrap();
    browser.wait_for_count("#token", 1).await;
    browser.type_into("#token", token).await;
    browser.click("#use-token").await;
}

async fn report(app: &TestApp, firmware: &str, device: &str, status: &str) {
    let body =
        json!({"status": status, "from_version": "1.0.0", "error": (status == "failed").then_some("E_BOOT")});
    let response = helpers::report_as_owner(app, firmware, device, body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// `n` devices the current stage of 2.0.0 admits.
async fn admitted_devices(app: &TestApp, n: usize) -> Vec<String> {
    let mut found = Vec::new();
    for i in 0.. {
        let device = format!("watch-{i:04}");
        let query = format!("hardware=nw-s1&version=1.0.0&device_id={device}");
        if offered_version(app, &query).await.as_deref() == Some("2.0.0") {
            found.push(device);
            if found.len() == n {
                return found;
            }
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_engineer_uploads_publishes_and_steers_a_rollout_in_the_browser() {
    let started = Instant::now();
    let app = spawn_app().await;
    let old = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 200_000)).await;
    publish(&app, old["id"].as_str().unwrap(), json!({"channel": "stable"})).await;
    upload_ok(&app, "1.1.0-rc.1", &["nw-s1", "nw-s2"], image_bytes(3, 150_000)).await;
    assert_eq!(tick(&app.state, Utc::now()).await.unwrap(), 1, "1.0.0 completes");
    let browser = Browser::start(1280, 900).await;

    sign_in(&browser, &app, &app.admin_token()).await;
    browser.wait_for_text("#who", "Signed in as release-bot").await;
    let releases = browser.wait_for_text("#releases", "1.1.0-rc.1").await;
    assert!(
        releases.contains("1.0.0") && releases.contains("draft") && releases.contains("published"),
        "{releases}"
    );

    // Upload and publish in stages, watching the progress bar.
    let image = app.dir.path().join("nw-s1-2.0.0.bin");
    std::fs::write(&image, image_bytes(2, 3_000_000)).unwrap();
    browser.click("a[data-nav=upload]").await;
    browser.wait_for_count("#upload-form", 1).await;
    browser
        .driver()
        .find(thirtyfour::By::Css("#file"))
        .await
        .unwrap()
        .send_keys(image.display().to_string())
        .await
        .unwrap();
    browser.type_into("#version", "2.0.0").await;
    browser.type_into("#hardware", "nw-s1").await;
    browser.type_into("#release-notes", "Faster sync; fixes the step counter at midnight.").await;
    browser.type_into("#stages", "10, 50, 100").await;
    browser.type_into("#stage-duration", "0").await;
    browser.type_into("#max-failure-rate", "0.2").await;
    browser.type_into("#min-reports", "4").await;
    browser.screenshot("upload").await;
    browser
        .eval(
            "window.progressSeen = []; new MutationObserver(() => window.progressSeen.push(document.querySelector('#upload-progress').value))\
             .observe(document.querySelector('#upload-progress'), {attributes: true});",
        )
        .await;
    browser.click("#upload").await;

    // The rollout page, live: it moves as the service does.
    browser.wait_for_text("#state-text", "active").await;
    browser.wait_for_text("#stage-text", "1 of 3").await;
    let seen = browser.eval("return window.progressSeen").await;
    assert!(seen.as_array().unwrap().iter().any(|v| v == 100), "the progress bar reached 100 %: {seen}");
    let rollout_id = browser.eval("return location.hash.split('/')[2]").await.as_str().unwrap().to_owned();
    let firmware: serde_json::Value =
        helpers::admin_get(&app, &format!("/v1/admin/rollouts/{rollout_id}")).await.json().await.unwrap();
    let firmware = firmware["firmware_id"].as_str().unwrap().to_owned();
    browser.wait_for_text("#percent-text", "10 %").await;

    assert_eq!(tick(&app.state, Utc::now()).await.unwrap(), 1, "stage 1 has lasted its 0 s");
    browser.wait_for_text("#stage-text", "2 of 3").await;
    browser.wait_for_text("#percent-text", "50 %").await;

    let devices = admitted_devices(&app, 5).await;
    report(&app, &firmware, &devices[0], "installed").await;
    report(&app, &firmware, &devices[4], "downloading").await;
    browser.wait_for_text("#counts", "1 installed").await;
    // The phone relaying to devices[4]'s watch says how far it got.
    let relay = json!({"device_id": &devices[4], "status": "downloading",
        "relay": {"via": "phone", "bytes_delivered": 40960, "chunks_rejected": 2}});
    let response = app
        .post(&format!("/v1/firmware/{firmware}/report"))
        .bearer_auth(app.owner_token(&devices[4]))
        .json(&relay)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    browser
        .wait_for_text("#relay", "1 device · 40.0 KiB delivered · 2 chunks rejected · 1 not installed yet")
        .await;
    for device in &devices[1..4] {
        report(&app, &firmware, device, "failed").await;
    }
    browser.wait_for_text("#counts", "3 failed").await;
    browser.wait_for_text("#failure-rate", "75.0 %").await;
    assert_eq!(tick(&app.state, Utc::now()).await.unwrap(), 1, "4 outcomes at 75 % halt it");
    browser.wait_for_text("#state-text", "halted").await;
    browser.wait_for_text("#events", "halted").await;
    assert!(browser.wait_for_count("#chart svg rect.bar", 2).await >= 2, "bars for installed and failed");
    browser.wait_for_count("#chart svg polyline.rate", 1).await;
    browser.wait_for_count("#chart svg line.threshold", 1).await;
    browser.wait_for_text("#chain", "Chain valid: 3 events").await;
    let stages = browser.wait_for_text("#stages", "50 %").await;
    assert_eq!(stages.matches('—').count(), 1, "stages 1 and 2 were entered, 3 not yet: {stages}");
    browser.screenshot("rollout").await;

    // Manual control, each behind a confirmation.
    browser.click("#control-resume").await;
    browser.wait_for_count("dialog#confirm[open]", 1).await;
    browser.click("#confirm-cancel").await;
    browser.wait_for_text("#state-text", "halted").await;
    browser.click_and_confirm("#control-resume").await;
    browser.wait_for_text("#state-text", "active").await;
    browser.click_and_confirm("#control-pause").await;
    browser.wait_for_text("#state-text", "paused").await;
    browser.click_and_confirm("#control-resume").await;
    browser.wait_for_text("#state-text", "active").await;
    let events = browser.wait_for_text("#events", "paused").await;
    assert!(events.contains("release-bot") && events.contains("resumed"), "{events}");
    browser.wait_for_text("#chain", "Chain valid: 6 events").await;

    // The release: facts, manifest, rollouts, patches.
    browser.click(".crumbs a[href^='#/release/']").await;
    browser.wait_for_text("h1", "Release 2.0.0").await;
    let page = browser.wait_for_text("#main", "Manifest").await;
    assert!(page.contains("Faster sync") && page.contains("stable") && page.contains("Patches"), "{page}");
    browser.wait_for_text(".manifest", "2.0.0").await;
    browser.screenshot("release").await;

    // A device.
    browser.driver().goto(app.url(&format!("/console/#/device/{}", devices[1]))).await.unwrap();
    let device = browser.wait_for_text("#device", "failed").await;
    assert!(device.contains(&format!("owner-of-{}", devices[1])) && device.contains("E_BOOT"), "{device}");

    // Revoke the old release, with a reason.
    browser
        .driver()
        .goto(app.url(&format!("/console/#/release/{}", old["id"].as_str().unwrap())))
        .await
        .unwrap();
    browser.wait_for_text("h1", "Release 1.0.0").await;
    browser.type_into("#revoke-reason", "bricks nw-s1 units on boot").await;
    browser.click_and_confirm("#revoke").await;
    browser.wait_for_text("h1", "revoked").await;
    browser.wait_for_text("#main", "bricks nw-s1 units on boot").await;

    // The list, filtered.
    browser.click("a[data-nav=releases]").await;
    browser.wait_for_text("#releases", "2.0.0").await;
    browser.screenshot("releases").await;
    browser
        .driver()
        .find(thirtyfour::By::Css("#filter-state option[value=draft]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.click(".filters button[type=submit]").await;
    browser.wait_for_text("#releases", "1 release").await;
    let drafts = browser.wait_for_text("#releases", "1.1.0-rc.1").await;
    assert!(!drafts.contains("2.0.0"), "{drafts}");

    browser.quit().await;
    eprintln!("console flow in the browser: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_is_not_an_admins_is_told_so_and_the_token_stays_out_of_urls() {
    let started = Instant::now();
    let app = spawn_app().await;
    // A phone's viewport: the page must not scroll sideways.
    let browser = Browser::start(390, 844).await;

    let user = app.user_token();
    sign_in(&browser, &app, &user).await;
    let error = browser.wait_for_text("#releases .error", "403 Forbidden").await;
    assert!(error.contains("not an admin"), "{error}");
    let url = browser.driver().current_url().await.unwrap().to_string();
    assert!(!url.contains(&user) && !url.contains("eyJ"), "{url}");
    let stored = browser.eval("return sessionStorage.getItem('nowatch-ota.console.token')").await;
    assert_eq!(stored, user.as_str());
    assert_eq!(browser.eval("return localStorage.length").await, 0, "nothing outlives the tab");

    browser.click(".error button.link").await;
    sign_in(&browser, &app, "not-a-token").await;
    browser.wait_for_text("#releases .error", "401 Unauthorized").await;

    browser.click("#sign-out").await;
    browser.wait_for_count("#token", 1).await;
    assert_eq!(browser.eval("return sessionStorage.length").await, 0);

    // Without `proxy.upstream` the backend's admin login is not there: the page says so.
    browser.click(".sign-in details summary").await;
    browser.type_into("#email", "ops@example.com").await;
    browser.type_into("#password", "hunter2").await;
    browser.click("#login-form button[type=submit]").await;
    browser.wait_for_text("#sign-in-status", "no upstream is configured").await;
    assert_eq!(browser.eval("return sessionStorage.length").await, 0);

    upload_ok(&app, "3.0.0", &["nw-s1"], image_bytes(9, 1000)).await;
    sign_in(&browser, &app, &app.admin_token()).await;
    browser.wait_for_text("#releases", "3.0.0").await;
    // Only a UUID goes into a release's API paths: anything else is no such release.
    browser.driver().goto(app.url("/console/#/release/..%2F..%2Fadmin%2Frollouts")).await.unwrap();
    browser.wait_for_text("main", "No release").await;
    browser.driver().goto(app.url("/console/#/release/%E0")).await.unwrap();
    browser.wait_for_text("main", "No release").await;
    browser.driver().goto(app.url("/console/#/releases")).await.unwrap();
    browser.wait_for_text("#releases", "3.0.0").await;
    let overflow = browser.eval("return document.documentElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().unwrap() <= 0, "the page scrolls sideways on a phone by {overflow} px");
    browser.screenshot("phone").await;

    browser.quit().await;
    eprintln!("403/401 and phone layout in the browser: {:.1} s", started.elapsed().as_secs_f64());
}

/// A stand-in for the backend's admin login: `POST /v2/auth/login/admin` answers 201 with an
/// admin token for the right password, 401 in the NOWATCH shape otherwise; what it received is
/// kept for the test.
async fn backend_with_admin_login(
    admin_token: String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    let server = HttpServer::new(move || {
        let (token, seen) = (admin_token.clone(), kept.clone());
        App::new().route(
            "/v2/auth/login/admin",
            web::post().to(move |body: web::Json<serde_json::Value>| {
                let (token, seen) = (token.clone(), seen.clone());
                async move {
                    seen.lock().unwrap().push(body.to_string());
                    match body["password"] == "correct horse" {
                        true => HttpResponse::Created().json(json!({"access": token, "refresh": "r"})),
                        false => HttpResponse::Unauthorized()
                            .json(json!({"statusCode": 401, "message": ["wrong email or password"], "error": "Unauthorized"})),
                    }
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let address = format!("http://{}", server.addrs()[0]);
    tokio::spawn(server.run());
    (address, seen)
}

#[tokio::test]
async fn signing_in_through_the_backend_keeps_the_token_it_gives_for_the_tab() {
    let admin = helpers::token(json!({"sub": "ops@example.com", "isAdmin": true}));
    let (upstream, seen) = backend_with_admin_login(admin.clone()).await;
    let app = helpers::spawn_app_with(&[("NOWATCH_OTA__PROXY__UPSTREAM", upstream.as_str())]).await;
    upload_ok(&app, "4.0.0", &["nw-s1"], image_bytes(12, 1000)).await;
    let browser = Browser::start(1280, 900).await;
    browser.driver().goto(app.url("/console/")).await.unwrap();
    browser.click(".sign-in details summary").await;
    browser.type_into("#email", "ops@example.com").await;
    browser.type_into("#password", "wrong").await;
    browser.click("#login-form button[type=submit]").await;
    browser.wait_for_text("#sign-in-status", "wrong email or password").await;
    assert_eq!(browser.eval("return sessionStorage.length").await, 0, "a refused sign-in keeps nothing");

    browser.driver().find(thirtyfour::By::Css("#password")).await.unwrap().clear().await.unwrap();
    browser.type_into("#password", "correct horse").await;
    browser.click("#login-form button[type=submit]").await;
    browser.wait_for_text("#releases", "4.0.0").await;
    let stored = browser.eval("return sessionStorage.getItem('nowatch-ota.console.token')").await;
    assert_eq!(stored, admin.as_str(), "the backend's token, kept for the tab");
    assert!(!browser.driver().current_url().await.unwrap().to_string().contains("eyJ"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "the proxy passed both attempts to the backend");
    assert!(seen[1].contains("ops@example.com") && seen[1].contains("correct horse"), "{seen:?}");
    browser.quit().await;
}
