//! The OpenAPI document covers every local route and is valid OpenAPI 3; the docs page is
//! served from assets compiled into the binary.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::helpers::spawn_app;

/// Every (path, method) the route modules mount, read from their source: the actix route
/// attributes (`#[get("/path")]`), which utoipa-actix-web registers with their operations. A
/// route mounted any other way (`web::resource`, `.route`) would escape the document, so none is,
/// but for the docs page and the release console's files (pages, not API).
fn mounted_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        if !path.ends_with("docs.rs") && !path.ends_with("console.rs") && !path.ends_with("mod.rs") {
            assert!(
                !source.contains("web::resource(") && !source.contains(".route("),
                "{path:?} mounts a route outside the document"
            );
        }
        for method in ["get", "post", "put", "patch", "delete", "head"] {
            for chunk in source.split(&format!("\n#[{method}(\"")).skip(1) {
                routes.insert((chunk.split('"').next().unwrap().to_owned(), method.to_owned()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_mounted_route_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let response = app.get("/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let spec: Value = response.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let mounted = mounted_routes();
    assert!(mounted.len() >= 25, "{mounted:?}");
    for (path, method) in &mounted {
        assert!(spec["paths"][path][method].is_object(), "{method} {path} is mounted but not documented");
    }
    let documented: usize =
        spec["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, mounted.len(), "the document lists routes that are not mounted");
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
    assert!(spec["paths"]["/v1/admin/firmware"]["post"]["security"].is_array());
}

#[tokio::test]
async fn the_openapi_document_validates_as_openapi_3() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json").send().await.unwrap().text().await.unwrap();
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, spec).unwrap();
    let output = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "openapi-spec-validator (installed by tests/run) refused the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_docs_page_is_served_without_any_outside_asset() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirect = client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    let page = app.get("/docs/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://") && !html.contains("http://"), "the page loads nothing from outside");
    let css = app.get("/docs/swagger-ui.css").send().await.unwrap();
    assert_eq!(css.status(), 200);
    let init = app.get("/docs/swagger-initializer.js").send().await.unwrap().text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
}
