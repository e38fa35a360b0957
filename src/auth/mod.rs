//! Bearer JWT verification and the extractors handlers use: [`Caller`] (any valid token) and
//! [`AdminUser`] (a valid token with the admin claim). Tokens are issued by the full NOWATCH
//! backend; this service only verifies them, with the algorithm pinned by configuration.

mod extractors;
mod jwt;

pub use extractors::{AdminUser, Caller, OptionalCaller, bearer};
pub use jwt::{AuthError, JwtVerifier, mint_dev_token};
