//! Columns the service wrote and never read (issue 20): the firmware's version split into
//! `version_major`/`_minor`/`_patch`/`_pre` (ordering and uniqueness use `version_key`), its
//! `blob_key` (the store's key follows from `sha256`), and `device_report.first_reported_at`.
//! `down` brings them back empty (zeros and empty strings), not as they were.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Firmware {
    Table,
    VersionMajor,
    VersionMinor,
    VersionPatch,
    VersionPre,
    BlobKey,
}

#[derive(DeriveIden)]
enum DeviceReport {
    Table,
    FirstReportedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            Firmware::VersionMajor,
            Firmware::VersionMinor,
            Firmware::VersionPatch,
            Firmware::VersionPre,
            Firmware::BlobKey,
        ] {
            manager.alter_table(Table::alter().table(Firmware::Table).drop_column(column).to_owned()).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(DeviceReport::Table)
                    .drop_column(DeviceReport::FirstReportedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let firmware = [
            big_integer(Firmware::VersionMajor).default(0).to_owned(),
            big_integer(Firmware::VersionMinor).default(0).to_owned(),
            big_integer(Firmware::VersionPatch).default(0).to_owned(),
            string_len(Firmware::VersionPre, 128).default("").to_owned(),
            string_len(Firmware::BlobKey, 128).default("").to_owned(),
        ];
        for mut column in firmware {
            manager
                .alter_table(Table::alter().table(Firmware::Table).add_column(&mut column).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(DeviceReport::Table)
                    // SQLite adds a column only with a constant default.
                    .add_column(
                        timestamp_with_time_zone(DeviceReport::FirstReportedAt)
                            .default("1970-01-01T00:00:00Z"),
                    )
                    .to_owned(),
            )
            .await
    }
}
