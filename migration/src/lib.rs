//! Database migrations of nowatch-ota, for SQLite and PostgreSQL. Files are named
//! `mYYYYMMDD_NNNNNN_verb_noun.rs`, each with its own identifiers and a `down`, and are never
//! edited once landed: a change is a new migration.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_tables;
mod m20261123_000002_add_rollout_chain_head;
mod m20261124_000003_create_rollout_report_count;
pub mod m20261201_000004_one_live_rollout_per_channel;
mod m20261201_000005_add_device_owner;
mod m20261203_000006_drop_write_only_columns;
mod m20261203_000007_create_firmware_delta;
mod m20261207_000008_add_chunk_table_and_relay;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_tables::Migration),
            Box::new(m20261123_000002_add_rollout_chain_head::Migration),
            Box::new(m20261124_000003_create_rollout_report_count::Migration),
            Box::new(m20261201_000004_one_live_rollout_per_channel::Migration),
            Box::new(m20261201_000005_add_device_owner::Migration),
            Box::new(m20261203_000006_drop_write_only_columns::Migration),
            Box::new(m20261203_000007_create_firmware_delta::Migration),
            Box::new(m20261207_000008_add_chunk_table_and_relay::Migration),
        ]
    }
}
