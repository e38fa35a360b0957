//! `migration up|down|status|fresh`: applies the migrations to `DATABASE_URL` without the
//! service. (`nowatch-ota migrate` does the same with the service's own configuration.)

use migration::{Migrator, MigratorTrait};

#[tokio::main]
async fn main() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("migration: set DATABASE_URL (sqlite://PATH?mode=rwc or postgres://...)");
        std::process::exit(2);
    };
    let command = std::env::args().nth(1).unwrap_or_else(|| "up".into());
    let result = async {
        let db = sea_orm_migration::sea_orm::Database::connect(&url).await?;
        match command.as_str() {
            "up" => Migrator::up(&db, None).await,
            "down" => Migrator::down(&db, Some(1)).await,
            "status" => Migrator::status(&db).await,
            "fresh" => Migrator::fresh(&db).await,
            other => {
                eprintln!("migration: unknown command {other:?}; use up, down, status or fresh");
                std::process::exit(2);
            }
        }
    }
    .await;
    if let Err(e) = result {
        eprintln!("migration {command}: {e}");
        std::process::exit(1);
    }
}
