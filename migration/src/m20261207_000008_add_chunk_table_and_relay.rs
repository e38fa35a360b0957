//! Relayed updates (issue 22):
//! - `firmware.chunk_size` and `firmware.chunk_table_sha256`: the chunk table of a published
//!   image (the SHA-256 of each `chunk_size` bytes, stored as `chunks/<sha256>`), which its
//!   manifests sign; null until the table is built (at publish, or by the backfill for releases
//!   published before this migration);
//! - `device_report.relay_bytes_delivered` and `device_report.relay_chunks_rejected`: what the
//!   phone said of its relay to the watch (null: not relayed).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let firmware = [integer_null(Firmware::ChunkSize), string_len_null(Firmware::ChunkTableSha256, 64)];
        for mut column in firmware {
            manager
                .alter_table(Table::alter().table(Firmware::Table).add_column(&mut column).to_owned())
                .await?;
        }
        let reports = [
            big_integer_null(DeviceReport::RelayBytesDelivered),
            big_integer_null(DeviceReport::RelayChunksRejected),
        ];
        for mut column in reports {
            manager
                .alter_table(Table::alter().table(DeviceReport::Table).add_column(&mut column).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [DeviceReport::RelayChunksRejected, DeviceReport::RelayBytesDelivered] {
            manager
                .alter_table(Table::alter().table(DeviceReport::Table).drop_column(column).to_owned())
                .await?;
        }
        for column in [Firmware::ChunkTableSha256, Firmware::ChunkSize] {
            manager.alter_table(Table::alter().table(Firmware::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Firmware {
    Table,
    ChunkSize,
    ChunkTableSha256,
}

#[derive(DeriveIden)]
enum DeviceReport {
    Table,
    RelayBytesDelivered,
    RelayChunksRejected,
}
