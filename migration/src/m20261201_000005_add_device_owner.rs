//! Device reports one account cannot forge (issue 17):
//! - `device.owner`: the account (token `sub`) a device belongs to, bound by its first report;
//!   devices reported before this migration have none and are bound by their next report;
//! - `device_report.counted`: whether the device's outcome counts towards its rollout's health
//!   (decided at its first report for the release), and `device_report.failures`, its `failed`
//!   reports for the release (the retry cut-off);
//! - `rollout_uncounted_count`: per status, the devices a rollout keeps apart;
//! - `rollout_owner_count`: per account, the devices counted towards a rollout (at most
//!   `rollout.max_devices_per_owner`, held by a conditional increment);
//! - `admin_audit`: admin actions on devices.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Device::Table)
                    .add_column(string_len_null(Device::Owner, 255))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_device_owner").table(Device::Table).col(Device::Owner).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DeviceReport::Table)
                    .add_column(boolean(DeviceReport::Counted).default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DeviceReport::Table)
                    .add_column(integer(DeviceReport::Failures).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("UPDATE device_report SET failures = 1 WHERE status = 'failed'")
            .await?;
        // The retry cut-off is reloaded with every catalog rebuild (every few seconds): a partial
        // index holds just the devices that failed, not every report.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_device_report_failed ON device_report (failures) WHERE failures > 0",
            )
            .await?;
        for (table, by) in [
            (RolloutCount::UncountedTable.into_iden(), RolloutCount::Status.into_iden()),
            (RolloutCount::OwnerTable.into_iden(), RolloutCount::Owner.into_iden()),
        ] {
            let by_width = if by.to_string() == "status" { 16 } else { 255 };
            manager
                .create_table(
                    Table::create()
                        .table(table.clone())
                        .col(uuid(RolloutCount::RolloutId))
                        .col(string_len(by.clone(), by_width))
                        .col(big_integer(RolloutCount::Devices))
                        .primary_key(Index::create().col(RolloutCount::RolloutId).col(by))
                        .foreign_key(
                            ForeignKey::create()
                                .name(format!("fk_{table}_rollout"))
                                .from(table, RolloutCount::RolloutId)
                                .to(Rollout::Table, Rollout::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AdminAudit::Table)
                    .col(big_pk_auto(AdminAudit::Id))
                    .col(string_len(AdminAudit::Actor, 255))
                    .col(string_len(AdminAudit::Action, 64))
                    .col(string_len(AdminAudit::Subject, 255))
                    .col(json(AdminAudit::Detail))
                    .col(timestamp_with_time_zone(AdminAudit::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_admin_audit_subject")
                    .table(AdminAudit::Table)
                    .col(AdminAudit::Subject)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AdminAudit::Table.into_iden(),
            RolloutCount::OwnerTable.into_iden(),
            RolloutCount::UncountedTable.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS idx_device_report_failed").await?;
        for column in [DeviceReport::Failures, DeviceReport::Counted] {
            manager
                .alter_table(Table::alter().table(DeviceReport::Table).drop_column(column).to_owned())
                .await?;
        }
        manager.drop_index(Index::drop().name("idx_device_owner").table(Device::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Device::Table).drop_column(Device::Owner).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Device {
    Table,
    Owner,
}

#[derive(DeriveIden)]
enum DeviceReport {
    Table,
    Counted,
    Failures,
}

#[derive(DeriveIden)]
enum RolloutCount {
    #[sea_orm(iden = "rollout_uncounted_count")]
    UncountedTable,
    #[sea_orm(iden = "rollout_owner_count")]
    OwnerTable,
    RolloutId,
    Status,
    Owner,
    Devices,
}

#[derive(DeriveIden)]
enum Rollout {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AdminAudit {
    Table,
    Id,
    Actor,
    Action,
    Subject,
    Detail,
    CreatedAt,
}
