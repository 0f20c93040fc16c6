//! Client quotas through the admin client: users, client ids, both, and the defaults;
//! described all together and one entity at a time; keys removed; bad keys refused.

use strom_client::admin::QuotaEntity;

use crate::support::TestBroker;

#[tokio::test]
async fn quotas_are_set_described_and_removed_per_entity() {
    let b = TestBroker::start().await;
    let admin = b.admin().await;
    let alice = QuotaEntity::user("alice");
    let app = QuotaEntity::client_id("app");
    let alice_app = QuotaEntity::user("alice").and_client_id(Some("app"));
    let everyone = QuotaEntity::default_user();
    admin
        .alter_client_quotas(&alice, &[("producer_byte_rate", 1000.0)], &[])
        .await
        .unwrap();
    admin
        .alter_client_quotas(&app, &[("consumer_byte_rate", 2000.0)], &[])
        .await
        .unwrap();
    admin
        .alter_client_quotas(
            &alice_app,
            &[("request_percentage", 50.0), ("producer_byte_rate", 3000.0)],
            &[],
        )
        .await
        .unwrap();
    admin
        .alter_client_quotas(&everyone, &[("producer_byte_rate", 4000.0)], &[])
        .await
        .unwrap();

    let all = admin.describe_client_quotas(None).await.unwrap();
    assert_eq!(all.len(), 4, "{all:?}");
    let one = admin
        .describe_client_quotas(Some(&alice_app))
        .await
        .unwrap();
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0].0, alice_app);
    assert_eq!(one[0].1["request_percentage"], 50.0);
    assert_eq!(one[0].1["producer_byte_rate"], 3000.0);
    // Strict: the user alone, not the user with a client id.
    let only_alice = admin.describe_client_quotas(Some(&alice)).await.unwrap();
    assert_eq!(only_alice.len(), 1);
    assert_eq!(only_alice[0].1["producer_byte_rate"], 1000.0);
    let default = admin.describe_client_quotas(Some(&everyone)).await.unwrap();
    assert_eq!(default[0].0.to_string(), "user=<default>");

    admin
        .alter_client_quotas(&alice_app, &[], &["request_percentage"])
        .await
        .unwrap();
    let one = admin
        .describe_client_quotas(Some(&alice_app))
        .await
        .unwrap();
    assert_eq!(one[0].1.keys().collect::<Vec<_>>(), ["producer_byte_rate"]);

    let e = admin
        .alter_client_quotas(&alice, &[("bogus_rate", 1.0)], &[])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bogus_rate"), "{e}");
    let e = admin
        .alter_client_quotas(&alice, &[("producer_byte_rate", -1.0)], &[])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("positive"), "{e}");
}
