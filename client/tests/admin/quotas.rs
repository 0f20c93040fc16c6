//! Client quotas through the admin client: users, client ids, both, and the defaults;
//! described all together and through filters; keys removed; bad keys and values refused,
//! naming the entity and the key; nothing applied from a refused change.

use strom_client::admin::{Admin, QuotaEntity, QuotaFilter, QuotaMatch};
use strom_protocol::ErrorCode;

use crate::support::TestBroker;

/// The entities `filter` matches, as `entity key=value` lines.
async fn described(admin: &Admin, filter: &QuotaFilter) -> Vec<String> {
    let mut lines = Vec::new();
    for (entity, values) in admin.describe_client_quotas(filter).await.unwrap() {
        for (key, value) in values {
            lines.push(format!("{entity} {key}={value}"));
        }
    }
    lines
}

#[tokio::test]
async fn quotas_are_set_described_and_removed_per_entity() {
    let b = TestBroker::start().await;
    let admin = b.admin().await;
    let alice = QuotaEntity::user("alice");
    let app = QuotaEntity::client_id("app");
    let alice_app = QuotaEntity::user("alice").and_client_id(Some("app"));
    let everyone = QuotaEntity::default_user();
    let changes: [(&QuotaEntity, &[(&str, f64)]); 4] = [
        (&alice, &[("producer_byte_rate", 1000.0)]),
        (&app, &[("consumer_byte_rate", 2000.0)]),
        (
            &alice_app,
            &[("request_percentage", 50.0), ("producer_byte_rate", 3000.0)],
        ),
        (&everyone, &[("producer_byte_rate", 4000.0)]),
    ];
    for (entity, set) in changes {
        admin.alter_client_quotas(entity, set, &[]).await.unwrap();
    }

    assert_eq!(
        described(&admin, &QuotaFilter::all()).await,
        [
            "client-id=app consumer_byte_rate=2000",
            "user=<default> producer_byte_rate=4000",
            "user=alice producer_byte_rate=1000",
            "user=alice,client-id=app producer_byte_rate=3000",
            "user=alice,client-id=app request_percentage=50",
        ]
    );
    // One user: alone and with its client ids; exactly the user alone.
    let of_alice = admin
        .describe_client_quotas(&QuotaFilter::user("alice"))
        .await
        .unwrap();
    let entities: Vec<_> = of_alice.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(entities, [alice.clone(), alice_app.clone()]);
    assert_eq!(
        described(&admin, &QuotaFilter::entity(&alice)).await,
        ["user=alice producer_byte_rate=1000"]
    );
    // One client id, alone and with users.
    let of_app = described(&admin, &QuotaFilter::client_id("app")).await;
    assert_eq!(of_app.len(), 3, "{of_app:?}");
    assert_eq!(
        described(&admin, &QuotaFilter::entity(&app)).await,
        ["client-id=app consumer_byte_rate=2000"]
    );
    assert_eq!(
        described(&admin, &QuotaFilter::entity(&everyone)).await,
        ["user=<default> producer_byte_rate=4000"]
    );
    // Any user, no client id.
    let users_alone = QuotaFilter {
        user: Some(QuotaMatch::Any),
        strict: true,
        ..QuotaFilter::default()
    };
    assert_eq!(
        described(&admin, &users_alone).await,
        [
            "user=<default> producer_byte_rate=4000",
            "user=alice producer_byte_rate=1000"
        ]
    );
    assert!(described(&admin, &QuotaFilter::user("bob"))
        .await
        .is_empty());

    admin
        .alter_client_quotas(&alice_app, &[], &["request_percentage"])
        .await
        .unwrap();
    assert_eq!(
        described(&admin, &QuotaFilter::entity(&alice_app)).await,
        ["user=alice,client-id=app producer_byte_rate=3000"]
    );
    // The last key removed, the entity is gone.
    admin
        .alter_client_quotas(&app, &[], &["consumer_byte_rate"])
        .await
        .unwrap();
    assert!(described(&admin, &QuotaFilter::entity(&app))
        .await
        .is_empty());
}

#[tokio::test]
async fn bad_keys_and_values_are_refused_naming_them() {
    let b = TestBroker::start().await;
    let admin = b.admin().await;
    let alice = QuotaEntity::user("alice");
    let e = admin
        .alter_client_quotas(
            &alice,
            &[("producer_byte_rate", 1000.0), ("bogus_rate", 1.0)],
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::INVALID_REQUEST), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("user=alice") && text.contains("bogus_rate"),
        "{text}"
    );
    let e = admin
        .alter_client_quotas(&alice, &[("producer_byte_rate", -1.0)], &[])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("positive"), "{e}");
    let e = admin
        .alter_client_quotas(&QuotaEntity::default(), &[("producer_byte_rate", 1.0)], &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::INVALID_REQUEST), "{e}");
    // Nothing from the refused changes was applied.
    assert!(admin
        .describe_client_quotas(&QuotaFilter::all())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn quotas_need_cluster_configs_permissions_under_an_authoriser() {
    let b = TestBroker::start_with(|c| c.authorizer = true).await;
    let admin = b.admin().await;
    let e = admin
        .alter_client_quotas(
            &QuotaEntity::user("alice"),
            &[("producer_byte_rate", 1.0)],
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED),
        "{e}"
    );
    let e = admin
        .describe_client_quotas(&QuotaFilter::all())
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED),
        "{e}"
    );
}
