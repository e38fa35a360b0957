//! Per-rollout report counts by status, kept up to date in the same transaction as each report, so
//! that a rollout's status and its health evaluation read five rows instead of counting every
//! device report (1 s at 1,000,000 reports before this table).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RolloutReportCount::Table)
                    .col(uuid(RolloutReportCount::RolloutId))
                    .col(string_len(RolloutReportCount::Status, 16))
                    .col(big_integer(RolloutReportCount::Devices))
                    .primary_key(
                        Index::create().col(RolloutReportCount::RolloutId).col(RolloutReportCount::Status),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_rollout_report_count_rollout")
                            .from(RolloutReportCount::Table, RolloutReportCount::RolloutId)
                            .to(Rollout::Table, Rollout::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Reports recorded before this migration.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO rollout_report_count (rollout_id, status, devices) \
                 SELECT rollout_id, status, COUNT(*) FROM device_report \
                 WHERE rollout_id IS NOT NULL GROUP BY rollout_id, status",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RolloutReportCount::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum RolloutReportCount {
    Table,
    RolloutId,
    Status,
    Devices,
}

#[derive(DeriveIden)]
enum Rollout {
    Table,
    Id,
}
