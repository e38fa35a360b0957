//! Delta updates (issue 21):
//! - `firmware_delta`: one row per (release, version devices run, stored image of that version;
//!   `''` when there is none) the service builds or decided not to build a patch for, with its state, why it was skipped or failed, the patch's digest
//!   and size once ready, and the claim (`claim`, `lease_until`) an instance holds while it
//!   builds, so two instances never build the same patch at once and a crashed build is resumed;
//! - `device_report.via` ("delta" or "full": how the device fetched the release) and
//!   `device_report.delta_failures` (`failed` reports while on a delta: such a device is offered
//!   the full image next), with a partial index like the retry cut-off's;
//! - an index on `device (hardware, version)` for counting the versions a hardware runs.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FirmwareDelta::Table)
                    .col(uuid(FirmwareDelta::FirmwareId))
                    .col(string_len(FirmwareDelta::FromVersion, 128))
                    .col(uuid_null(FirmwareDelta::FromFirmwareId))
                    .col(string_len(FirmwareDelta::FromSha256, 64))
                    .col(string_len(FirmwareDelta::State, 16))
                    .col(string_len_null(FirmwareDelta::Reason, 255))
                    .col(big_integer(FirmwareDelta::Devices))
                    .col(string_len(FirmwareDelta::Format, 64))
                    .col(big_integer_null(FirmwareDelta::Size))
                    .col(string_len_null(FirmwareDelta::Sha256, 64))
                    .col(uuid_null(FirmwareDelta::Claim))
                    .col(timestamp_with_time_zone_null(FirmwareDelta::LeaseUntil))
                    .col(integer(FirmwareDelta::Attempts).default(0))
                    .col(timestamp_with_time_zone(FirmwareDelta::CreatedAt))
                    .col(timestamp_with_time_zone(FirmwareDelta::UpdatedAt))
                    .col(timestamp_with_time_zone_null(FirmwareDelta::BuiltAt))
                    .primary_key(
                        Index::create()
                            .col(FirmwareDelta::FirmwareId)
                            .col(FirmwareDelta::FromVersion)
                            .col(FirmwareDelta::FromSha256),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_firmware_delta_firmware")
                            .from(FirmwareDelta::Table, FirmwareDelta::FirmwareId)
                            .to(Firmware::Table, Firmware::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_firmware_delta_state", FirmwareDelta::State),
            ("idx_firmware_delta_sha256", FirmwareDelta::Sha256),
        ] {
            manager
                .create_index(Index::create().name(name).table(FirmwareDelta::Table).col(column).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(DeviceReport::Table)
                    .add_column(string_len_null(DeviceReport::Via, 8))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DeviceReport::Table)
                    .add_column(integer(DeviceReport::DeltaFailures).default(0))
                    .to_owned(),
            )
            .await?;
        // Reloaded with every catalog rebuild, as the retry cut-off's `failures > 0` is.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_device_report_delta_failed ON device_report (delta_failures) \
                 WHERE delta_failures > 0",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_device_hardware_version")
                    .table(Device::Table)
                    .col(Device::Hardware)
                    .col(Device::Version)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_device_hardware_version").table(Device::Table).to_owned())
            .await?;
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS idx_device_report_delta_failed")
            .await?;
        for column in [DeviceReport::DeltaFailures, DeviceReport::Via] {
            manager
                .alter_table(Table::alter().table(DeviceReport::Table).drop_column(column).to_owned())
                .await?;
        }
        manager.drop_table(Table::drop().table(FirmwareDelta::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum FirmwareDelta {
    Table,
    FirmwareId,
    FromVersion,
    FromFirmwareId,
    FromSha256,
    State,
    Reason,
    Devices,
    Format,
    Size,
    Sha256,
    Claim,
    LeaseUntil,
    Attempts,
    CreatedAt,
    UpdatedAt,
    BuiltAt,
}

#[derive(DeriveIden)]
enum Firmware {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum DeviceReport {
    Table,
    Via,
    DeltaFailures,
}

#[derive(DeriveIden)]
enum Device {
    Table,
    Hardware,
    Version,
}
