use super::*;
use crate::test_support::Memory;

#[test]
fn secrets_are_kept_under_the_apps_keys_by_kind() {
    let store = StoreHandle::from_store(Memory::default());
    let s = Secrets::new(&store);
    assert_eq!(
        s.put("dex", SecretKind::ClientSecret, b"s3cret", Expected::Any)
            .expect("put"),
        1
    );
    assert_eq!(
        store
            .get("apps/dex/client-secret")
            .expect("get")
            .expect("there")
            .value
            .as_slice(),
        b"s3cret"
    );
    assert!(
        s.get("other", SecretKind::ClientSecret).expect("get").is_none(),
        "apps do not share secrets"
    );
    assert!(s.put("dex", SecretKind::ClientSecret, b"x", Expected::Absent).is_err());
    assert!(s.remove("dex", SecretKind::ClientSecret).expect("rm"));
    assert!(!s.remove("dex", SecretKind::ClientSecret).expect("rm again"));
}

#[test]
fn the_inventory_names_missing_credentials_and_only_present_extras() {
    let store = StoreHandle::from_store(Memory::default());
    let s = Secrets::new(&store);
    s.put("dex", SecretKind::ClientId, b"abc", Expected::Any).expect("put");
    s.put("dex", SecretKind::AppId, b"app-1", Expected::Any).expect("put");
    let inv = s.inventory(["dex", "s2s"]).expect("inventory");
    let of = |a: &str, k: SecretKind| inv.iter().find(|e| e.app == a && e.kind == k).cloned();
    assert_eq!(
        of("dex", SecretKind::ClientId).map(|e| (e.version, e.bytes)),
        Some((Some(1), Some(3)))
    );
    assert!(
        !of("dex", SecretKind::ClientSecret)
            .expect("listed while missing")
            .present()
    );
    assert!(of("dex", SecretKind::AppId).expect("present extra").present());
    assert!(of("s2s", SecretKind::AppId).is_none(), "absent extras are left out");
    assert_eq!(inv.iter().filter(|e| e.app == "s2s").count(), SecretKind::ALL.len());
}

#[test]
fn the_token_record_is_removed_only_at_the_version_read() {
    let store = StoreHandle::from_store(Memory::default());
    let v = store.put(&token_key("dex"), b"{}", Expected::Absent).expect("put");
    let s = Secrets::new(&store);
    assert_eq!(s.token("dex").expect("token").expect("there").version, v);
    assert!(s.remove_token("dex", v + 1).is_err(), "a newer record is not removed");
    assert!(s.remove_token("dex", v).expect("remove"));
    assert!(s.token("dex").expect("token").is_none());
}
