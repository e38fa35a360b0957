//! Actix extractors: a handler that takes [`Caller`] needs a valid token, one that takes
//! [`AdminUser`] needs an admin token (401 without a valid token, 403 for a non-admin).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use super::{AuthError, JwtVerifier};
use crate::error::ApiError;

/// Any caller with a valid token; `sub` attributes their actions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub sub: String,
    pub is_admin: bool,
    /// The token's roles (`auth.roles_claim`): which restricted channels it may see.
    pub roles: std::sync::Arc<[String]>,
    /// The devices the token may report for, when `auth.device_claim` is configured.
    pub devices: Option<std::sync::Arc<[String]>>,
}

/// A caller whose token carries the admin claim.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Caller);

/// A caller if a token was sent, for routes that may be public; a bad token is still refused.
#[derive(Debug, Clone)]
pub struct OptionalCaller(pub Option<Caller>);

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case); `None` without
/// the header, an error for any other shape.
pub fn bearer(req: &HttpRequest) -> Result<Option<&str>, AuthError> {
    let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(Some(token.trim()))
}

fn authenticate(req: &HttpRequest) -> Result<Option<Caller>, ApiError> {
    let Some(token) = bearer(req)? else {
        return Ok(None);
    };
    let verifier = req
        .app_data::<web::Data<JwtVerifier>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("JwtVerifier is not registered")))?;
    let identity = verifier.verify(token)?;
    Ok(Some(Caller {
        sub: identity.sub,
        is_admin: identity.is_admin,
        roles: identity.roles,
        devices: identity.devices,
    }))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|c| c.ok_or_else(|| AuthError::Missing.into())))
    }
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|caller| match caller {
            None => Err(AuthError::Missing.into()),
            Some(c) if c.is_admin => Ok(AdminUser(c)),
            Some(_) => Err(ApiError::Forbidden("this route needs an admin token".into())),
        }))
    }
}

impl FromRequest for OptionalCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(OptionalCaller))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::Unauthorized(e.to_string())
    }
}
