use serde_json::json;

use crate::helpers::{assert_error_shape, spawn_app, spawn_app_with, token};

const ADMIN_ROUTE: &str = "/v1/admin/firmware";

async fn status_with(app: &crate::helpers::TestApp, authorization: Option<String>) -> u16 {
    let mut request = app.get(ADMIN_ROUTE);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.unwrap().status().as_u16()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[tokio::test]
async fn admin_routes_need_a_token_and_say_so_in_the_error_shape() {
    let app = spawn_app().await;
    let response = app.get(ADMIN_ROUTE).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body = assert_error_shape(response, 401, ADMIN_ROUTE).await;
    assert_eq!(body["message"][0], "missing bearer token");
}

#[tokio::test]
async fn a_valid_non_admin_token_gets_403_and_an_admin_200() {
    let app = spawn_app().await;
    let response = app.get(ADMIN_ROUTE).bearer_auth(app.user_token()).send().await.unwrap();
    assert_error_shape(response, 403, ADMIN_ROUTE).await;
    assert_eq!(status_with(&app, Some(format!("Bearer {}", app.admin_token()))).await, 200);
    let roles = token(json!({"sub": "ci", "roles": ["reader", "admin"]}));
    assert_eq!(status_with(&app, Some(format!("Bearer {roles}"))).await, 200);
    let not_quite = token(json!({"sub": "ci", "isAdmin": "true", "roles": "admin"}));
    assert_eq!(status_with(&app, Some(format!("Bearer {not_quite}"))).await, 403);
}

#[tokio::test]
async fn forged_expired_and_premature_tokens_are_401() {
    let app = spawn_app().await;
    let admin = json!({"sub": "x", "isAdmin": true});
    let mut expired = admin.clone();
    expired["exp"] = json!(now() - 120);
    let mut within_leeway = admin.clone();
    within_leeway["exp"] = json!(now() - 5);
    let mut premature = admin.clone();
    premature["nbf"] = json!(now() + 600);
    let wrong_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "x", "isAdmin": true, "exp": now() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-that-is-long-enough-to-pass"),
    )
    .unwrap();
    let good = token(admin.clone());
    let (header, rest) = good.split_once('.').unwrap();
    let payload = rest.split_once('.').unwrap().0;
    let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &json!({"sub": "x", "isAdmin": true, "exp": now() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(nowatch_ota::config::DEV_HS_SECRET.as_bytes()),
    )
    .unwrap();
    let no_exp = {
        let claims = base64_url(br#"{"sub":"x","isAdmin":true}"#);
        format!("{header}.{claims}.{}", good.rsplit('.').next().unwrap())
    };
    for (name, auth) in [
        ("expired", format!("Bearer {}", token(expired))),
        ("premature", format!("Bearer {}", token(premature))),
        ("wrong secret", format!("Bearer {wrong_secret}")),
        ("alg none", format!("Bearer {alg_none}")),
        ("another HS algorithm", format!("Bearer {hs512}")),
        ("tampered claims", format!("Bearer {no_exp}")),
        ("garbage", "Bearer not.a.token".into()),
        ("basic scheme", "Basic dXNlcjpwYXNz".into()),
        ("empty bearer", "Bearer ".into()),
    ] {
        assert_eq!(status_with(&app, Some(auth)).await, 401, "{name} was not refused");
    }
    assert_eq!(
        status_with(&app, Some(format!("Bearer {}", token(within_leeway)))).await,
        200,
        "30 s of leeway"
    );
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__AUTH__ISSUER", "https://api.nowatch.tech"),
        ("NOWATCH_OTA__AUTH__AUDIENCE", "nowatch-ota"),
    ])
    .await;
    let good = json!({"sub": "x", "isAdmin": true, "iss": "https://api.nowatch.tech", "aud": "nowatch-ota"});
    assert_eq!(status_with(&app, Some(format!("Bearer {}", token(good.clone())))).await, 200);
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut no_iss = good.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    for claims in [wrong_iss, wrong_aud, no_iss] {
        assert_eq!(
            status_with(&app, Some(format!("Bearer {}", token(claims.clone())))).await,
            401,
            "{claims}"
        );
    }
}

#[tokio::test]
async fn an_eddsa_pinned_service_accepts_eddsa_and_refuses_hs_tokens_made_with_its_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let private_pem = nowatch_ota::signing::generate_pem().unwrap();
    let public_pem = {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&private_pem).unwrap();
        key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()
    };
    let public_path = dir.path().join("jwt.pub.pem");
    std::fs::write(&public_path, &public_pem).unwrap();
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__AUTH__ALGORITHM", "EdDSA"),
        ("NOWATCH_OTA__AUTH__PUBLIC_KEY_FILE", public_path.to_str().unwrap()),
    ])
    .await;
    let claims = json!({"sub": "x", "isAdmin": true, "exp": now() + 60});
    let eddsa = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(status_with(&app, Some(format!("Bearer {eddsa}"))).await, 200);
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(status_with(&app, Some(format!("Bearer {confused}"))).await, 401);
}

#[tokio::test]
async fn dev_token_mints_an_admin_token_the_service_accepts() {
    let app = spawn_app().await;
    let settings = nowatch_ota::config::Settings::load_from(Default::default()).unwrap();
    let admin = nowatch_ota::auth::mint_dev_token(&settings.auth, "me", true, 60).unwrap();
    let user = nowatch_ota::auth::mint_dev_token(&settings.auth, "me", false, 60).unwrap();
    assert_eq!(status_with(&app, Some(format!("Bearer {admin}"))).await, 200);
    assert_eq!(status_with(&app, Some(format!("Bearer {user}"))).await, 403);
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
