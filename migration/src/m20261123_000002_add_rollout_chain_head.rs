//! Anchors each rollout's event chain in the rollout row (`event_count`, `chain_head`), so that
//! deleting the newest events is detected, not only editing or removing earlier ones.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds columns one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Rollout::Table)
                    .add_column(integer(Rollout::EventCount).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Rollout::Table)
                    .add_column(string_len(Rollout::ChainHead, 64).default(""))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Rollout::Table).drop_column(Rollout::ChainHead).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Rollout::Table).drop_column(Rollout::EventCount).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Rollout {
    Table,
    EventCount,
    ChainHead,
}
