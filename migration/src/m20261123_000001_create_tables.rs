//! The first schema: releases, their hardware, rollouts with their hash-chained events, device
//! reports, devices and per-hardware anti-rollback floors.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Firmware::Table)
                    .col(uuid(Firmware::Id).primary_key())
                    .col(string_len(Firmware::Version, 128))
                    // Precedence key (no build metadata) and sortable parts of the version.
                    .col(string_len(Firmware::VersionKey, 128))
                    .col(big_integer(Firmware::VersionMajor))
                    .col(big_integer(Firmware::VersionMinor))
                    .col(big_integer(Firmware::VersionPatch))
                    .col(string_len(Firmware::VersionPre, 128))
                    .col(big_integer(Firmware::Size))
                    .col(string_len(Firmware::Sha256, 64))
                    .col(string_len(Firmware::BlobKey, 128))
                    .col(text_null(Firmware::ReleaseSignature))
                    .col(text(Firmware::ReleaseNotes))
                    .col(string_len_null(Firmware::MinFromVersion, 128))
                    .col(boolean(Firmware::Mandatory))
                    .col(string_len(Firmware::State, 16))
                    .col(string_len(Firmware::CreatedBy, 255))
                    .col(timestamp_with_time_zone(Firmware::CreatedAt))
                    .col(timestamp_with_time_zone(Firmware::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Firmware::PublishedAt))
                    .col(timestamp_with_time_zone_null(Firmware::RevokedAt))
                    .col(string_len_null(Firmware::RevokedBy, 255))
                    .col(text_null(Firmware::RevokeReason))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_firmware_state")
                    .table(Firmware::Table)
                    .col(Firmware::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_firmware_sha256")
                    .table(Firmware::Table)
                    .col(Firmware::Sha256)
                    .to_owned(),
            )
            .await?;

        // One row per (release, hardware id); the unique index is the rule that two versions of
        // equal precedence cannot both exist for one hardware id.
        manager
            .create_table(
                Table::create()
                    .table(FirmwareHardware::Table)
                    .col(uuid(FirmwareHardware::FirmwareId))
                    .col(string_len(FirmwareHardware::Hardware, 64))
                    .col(string_len(FirmwareHardware::VersionKey, 128))
                    .primary_key(
                        Index::create().col(FirmwareHardware::FirmwareId).col(FirmwareHardware::Hardware),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_firmware_hardware_firmware")
                            .from(FirmwareHardware::Table, FirmwareHardware::FirmwareId)
                            .to(Firmware::Table, Firmware::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_firmware_hardware_version")
                    .table(FirmwareHardware::Table)
                    .col(FirmwareHardware::Hardware)
                    .col(FirmwareHardware::VersionKey)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Rollout::Table)
                    .col(uuid(Rollout::Id).primary_key())
                    .col(uuid(Rollout::FirmwareId))
                    .col(string_len(Rollout::Channel, 32))
                    .col(string_len(Rollout::Salt, 32))
                    .col(json(Rollout::Stages))
                    .col(integer(Rollout::CurrentStage))
                    .col(string_len(Rollout::State, 16))
                    .col(double(Rollout::MaxFailureRate))
                    .col(big_integer(Rollout::MinReports))
                    .col(string_len(Rollout::CreatedBy, 255))
                    .col(timestamp_with_time_zone(Rollout::StageStartedAt))
                    .col(timestamp_with_time_zone(Rollout::CreatedAt))
                    .col(timestamp_with_time_zone(Rollout::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_rollout_firmware")
                            .from(Rollout::Table, Rollout::FirmwareId)
                            .to(Firmware::Table, Firmware::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_rollout_firmware")
                    .table(Rollout::Table)
                    .col(Rollout::FirmwareId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_rollout_state")
                    .table(Rollout::Table)
                    .col(Rollout::State)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RolloutEvent::Table)
                    .col(big_pk_auto(RolloutEvent::Id))
                    .col(uuid(RolloutEvent::RolloutId))
                    .col(integer(RolloutEvent::Seq))
                    .col(string_len(RolloutEvent::Actor, 255))
                    .col(string_len(RolloutEvent::Kind, 32))
                    .col(json(RolloutEvent::Detail))
                    .col(string_len(RolloutEvent::PrevHash, 64))
                    .col(string_len(RolloutEvent::Hash, 64))
                    .col(timestamp_with_time_zone(RolloutEvent::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_rollout_event_rollout")
                            .from(RolloutEvent::Table, RolloutEvent::RolloutId)
                            .to(Rollout::Table, Rollout::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_rollout_event_seq")
                    .table(RolloutEvent::Table)
                    .col(RolloutEvent::RolloutId)
                    .col(RolloutEvent::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Device::Table)
                    .col(string_len(Device::DeviceId, 128).primary_key())
                    .col(string_len(Device::Hardware, 64))
                    .col(string_len(Device::Version, 128))
                    .col(string_len_null(Device::Channel, 32))
                    .col(timestamp_with_time_zone(Device::LastReportAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_device_hardware")
                    .table(Device::Table)
                    .col(Device::Hardware)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeviceReport::Table)
                    .col(string_len(DeviceReport::DeviceId, 128))
                    .col(uuid(DeviceReport::FirmwareId))
                    .col(uuid_null(DeviceReport::RolloutId))
                    .col(string_len(DeviceReport::Status, 16))
                    .col(text_null(DeviceReport::Error))
                    .col(string_len_null(DeviceReport::FromVersion, 128))
                    .col(big_integer(DeviceReport::ReportCount))
                    .col(timestamp_with_time_zone(DeviceReport::FirstReportedAt))
                    .col(timestamp_with_time_zone(DeviceReport::UpdatedAt))
                    .primary_key(Index::create().col(DeviceReport::DeviceId).col(DeviceReport::FirmwareId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_device_report_firmware")
                            .from(DeviceReport::Table, DeviceReport::FirmwareId)
                            .to(Firmware::Table, Firmware::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_device_report_rollout")
                            .from(DeviceReport::Table, DeviceReport::RolloutId)
                            .to(Rollout::Table, Rollout::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_device_report_rollout_status")
                    .table(DeviceReport::Table)
                    .col(DeviceReport::RolloutId)
                    .col(DeviceReport::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(HardwareFloor::Table)
                    .col(string_len(HardwareFloor::Hardware, 64).primary_key())
                    .col(string_len(HardwareFloor::MinVersion, 128))
                    .col(string_len(HardwareFloor::UpdatedBy, 255))
                    .col(timestamp_with_time_zone(HardwareFloor::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            HardwareFloor::Table.into_iden(),
            DeviceReport::Table.into_iden(),
            Device::Table.into_iden(),
            RolloutEvent::Table.into_iden(),
            Rollout::Table.into_iden(),
            FirmwareHardware::Table.into_iden(),
            Firmware::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Firmware {
    Table,
    Id,
    Version,
    VersionKey,
    VersionMajor,
    VersionMinor,
    VersionPatch,
    VersionPre,
    Size,
    Sha256,
    BlobKey,
    ReleaseSignature,
    ReleaseNotes,
    MinFromVersion,
    Mandatory,
    State,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    PublishedAt,
    RevokedAt,
    RevokedBy,
    RevokeReason,
}

#[derive(DeriveIden)]
enum FirmwareHardware {
    Table,
    FirmwareId,
    Hardware,
    VersionKey,
}

#[derive(DeriveIden)]
enum Rollout {
    Table,
    Id,
    FirmwareId,
    Channel,
    Salt,
    Stages,
    CurrentStage,
    State,
    MaxFailureRate,
    MinReports,
    CreatedBy,
    StageStartedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RolloutEvent {
    Table,
    Id,
    RolloutId,
    Seq,
    Actor,
    Kind,
    Detail,
    PrevHash,
    Hash,
    CreatedAt,
}

#[derive(DeriveIden)]
#[allow(clippy::enum_variant_names)] // the column is `device_id`
enum Device {
    Table,
    DeviceId,
    Hardware,
    Version,
    Channel,
    LastReportAt,
}

#[derive(DeriveIden)]
enum DeviceReport {
    Table,
    DeviceId,
    FirmwareId,
    RolloutId,
    Status,
    Error,
    FromVersion,
    ReportCount,
    FirstReportedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum HardwareFloor {
    Table,
    Hardware,
    MinVersion,
    UpdatedBy,
    UpdatedAt,
}
