//! The run context against a real store (SQLite, or PostgreSQL with `FERRY_TEST_DATABASE_URL`).

use ferry_connectors::{CancelSignal, LOG_FLUSH_AT, RunContext, Secrets};
use ferry_core::run::{SyncDirection, Trigger};
use ferry_store::testing::fresh_store;
use ferry_store::{NewIntegration, NewRun, Store, SyncLogQuery};
use serde_json::json;

async fn context(s: &Store) -> RunContext {
    let inst = s
        .create_institution("state-u", "State University", None)
        .await
        .unwrap();
    let integration = s
        .create_integration(
            inst.id,
            NewIntegration {
                kind: "test_kind".into(),
                name: "A".into(),
                description: String::new(),
                enabled: true,
                config: json!({"path": "/out"}),
                secrets: None,
            },
        )
        .await
        .unwrap();
    let run = s
        .enqueue_run(&NewRun {
            institution_id: inst.id,
            integration_id: integration.id,
            kind: integration.kind.clone(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .unwrap();
    RunContext::new(
        s.clone(),
        integration,
        run,
        Secrets::new(),
        CancelSignal::never(),
    )
}

async fn stored(s: &Store, ctx: &RunContext) -> Vec<ferry_store::SyncLogEntry> {
    s.list_sync_log(
        ctx.institution_id(),
        &SyncLogQuery {
            integration_id: Some(ctx.integration().id),
            limit: 10_000,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn sync_log_is_buffered_and_written_in_batches() {
    let s = fresh_store().await;
    let ctx = context(&s).await;
    assert_eq!(ctx.config()["path"], "/out");
    for n in 0..LOG_FLUSH_AT - 1 {
        ctx.log(
            None,
            SyncDirection::Outgoing,
            "invalid_email",
            format!("row {n}"),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        stored(&s, &ctx).await.len(),
        0,
        "below the batch size nothing is written"
    );
    assert_eq!(ctx.pending_log(), LOG_FLUSH_AT - 1);
    ctx.log(None, SyncDirection::Outgoing, "invalid_email", "the 500th")
        .await
        .unwrap();
    assert_eq!(
        stored(&s, &ctx).await.len(),
        LOG_FLUSH_AT,
        "a full batch is written at once"
    );
    assert_eq!(ctx.pending_log(), 0);
    ctx.log(None, SyncDirection::Incoming, "match_conflict", "last")
        .await
        .unwrap();
    assert_eq!(ctx.flush_log().await.unwrap(), 1);
    assert_eq!(
        ctx.flush_log().await.unwrap(),
        0,
        "nothing is written twice"
    );
    let rows = stored(&s, &ctx).await;
    assert_eq!(rows.len(), LOG_FLUSH_AT + 1);
    assert_eq!(ctx.logged(), (LOG_FLUSH_AT + 1) as u64);
    assert!(
        rows.iter()
            .all(|r| r.run_id == Some(ctx.run().id)
                && r.integration_id == Some(ctx.integration().id))
    );
    assert_eq!(
        (
            rows[0].code.as_str(),
            rows[0].message.as_str(),
            rows[0].direction
        ),
        ("match_conflict", "last", SyncDirection::Incoming)
    );
}

#[tokio::test]
async fn rows_stay_buffered_when_the_store_fails() {
    let s = fresh_store().await;
    let ctx = context(&s).await;
    ctx.log(None, SyncDirection::Outgoing, "invalid_phone", "a")
        .await
        .unwrap();
    ctx.log(None, SyncDirection::Outgoing, "invalid_phone", "b")
        .await
        .unwrap();
    s.close().await;
    assert!(ctx.flush_log().await.is_err());
    assert_eq!(
        ctx.pending_log(),
        2,
        "a failed batch is kept for the next flush"
    );
}
