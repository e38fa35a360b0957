//! `AppState`: everything a handler needs, built once at start-up and shared by every worker.

use actix_web::web;
use sea_orm::DatabaseConnection;

use crate::auth::JwtVerifier;
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::services::channel_access::ChannelAccess;
use crate::services::limits::Limits;
use crate::signing::{ManifestSigner, ReleaseKeys, RootStore};
use crate::storage::BlobStore;

pub struct AppState {
    pub settings: Settings,
    pub db: DatabaseConnection,
    pub store: BlobStore,
    pub signer: ManifestSigner,
    /// Every version of the signed root of trust, checked at start-up.
    pub roots: RootStore,
    pub release_keys: ReleaseKeys,
    /// Registered on its own too: the auth extractors need nothing else.
    pub jwt: web::Data<JwtVerifier>,
    /// What update checks answer from, without the database.
    pub catalog: Catalog,
    /// Request limits of this instance, in memory (checks, reports, new devices).
    pub limits: Limits,
    /// Which channels a caller may see (`firmware.channel_roles`).
    pub channel_access: ChannelAccess,
    pub metrics: Metrics,
    /// Wakes a delta builder when patches were planned (`services::deltas`).
    pub delta_work: tokio::sync::Notify,
}

impl AppState {
    /// Connects to the database (migrating it unless disabled), opens the store and loads keys.
    /// Every failure names the configuration key behind it.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let jwt = web::Data::new(JwtVerifier::from_settings(&settings.auth)?);
        let signer = crate::signing::load_signer(&settings.signing, settings.production)?;
        let roots = RootStore::load(&settings.signing.root_dir, &signer, settings.production)?;
        let release_keys = ReleaseKeys::load_dir(&settings.signing.release_keys_dir)?;
        if settings.signing.require_release_signature && release_keys.is_empty() {
            anyhow::bail!(
                "`signing.require_release_signature`: no release keys in {}",
                settings.signing.release_keys_dir.display()
            );
        }
        let db = crate::db::connect(&settings.database).await?;
        if settings.database.run_migrations {
            crate::db::migrate(&db).await?;
        }
        let store = BlobStore::from_settings(&settings.storage).await?;
        let limits = Limits::from_settings(&settings);
        let state = Self {
            limits,
            channel_access: ChannelAccess::from_settings(&settings.firmware),
            settings,
            db,
            store,
            signer,
            roots,
            release_keys,
            jwt,
            catalog: Catalog::default(),
            metrics: Metrics::new()?,
            delta_work: tokio::sync::Notify::new(),
        };
        state.catalog.refresh(&state.db, &state.signer, &state.settings).await?;
        Ok(state)
    }

    /// Called after every committed change to releases, rollouts or floors, so that this
    /// instance's next update check sees it. A failure is logged: the periodic refresh retries.
    pub async fn catalog_changed(&self) {
        if let Err(e) = self.catalog.refresh(&self.db, &self.signer, &self.settings).await {
            tracing::error!(error = %e, "catalog refresh failed");
        }
    }

    /// Like `catalog_changed`, for a change to one release or its rollouts: only that release
    /// is read again. On failure the whole catalog is rebuilt.
    pub async fn release_changed(&self, id: uuid::Uuid) {
        if let Err(e) = self.catalog.refresh_release(&self.db, &self.signer, &self.settings, id).await {
            tracing::warn!(error = %e, firmware_id = %id, "catalog update failed; rebuilding it");
            self.catalog_changed().await;
        }
    }
}
