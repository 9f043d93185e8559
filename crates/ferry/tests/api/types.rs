//! The integration types as their connectors describe them: `GET /api/v1/integration-types`,
//! each kind's config schema in the OpenAPI document, and the error dictionary assembled from
//! the core's codes and every connector's.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn by_type<'a>(types: &'a Value, kind: &str) -> &'a Value {
    types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == kind)
        .unwrap_or_else(|| panic!("{kind} is not listed: {types}"))
}

#[tokio::test]
async fn integration_types_describe_every_kind() {
    let app = spawn_app().await;
    let (status, types) = app.get("/api/v1/integration-types").await;
    assert_eq!(status, 200, "{types}");
    let kinds: Vec<&str> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "bulk_upload",
            "contacts_export",
            "conversations_export",
            "eab_notes_export",
            "everyaction",
            "hubspot_incoming",
            "hubspot_outgoing",
            "salesforce_incoming",
            "salesforce_outgoing"
        ]
    );

    let eab = by_type(&types, "eab_notes_export");
    assert_eq!(eab["label"], "EAB Notes");
    assert_eq!(eab["title"], "EAB Notes Export");
    assert_eq!(eab["category"], "sftp_outbound");
    assert_eq!(eab["platform"]["id"], "sftp-outbound");
    let schema = &eab["config_schema"];
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["properties"]["eab"]["properties"]["note_body"]["description"].is_string());
    assert!(
        schema["properties"]["contacts"].is_null(),
        "only the EAB sections"
    );
    assert!(
        schema["required"]
            .as_array()
            .unwrap()
            .contains(&json!("eab"))
    );
    let secrets: Vec<&str> = eab["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(secrets, ["password", "private_key", "passphrase"]);
    assert_eq!(eab["secrets"][1]["kind"], "private_key");
    assert!(
        eab["error_codes"]
            .as_array()
            .unwrap()
            .contains(&json!("missing_crm_id"))
    );
    assert!(eab["oauth_provider"].is_null());

    let incoming = by_type(&types, "hubspot_incoming");
    assert_eq!(incoming["category"], "crm_sync");
    assert_eq!(incoming["oauth_provider"], "hubspot");
    assert_eq!(incoming["default_config"]["schedule"]["every_minutes"], 15);
    assert!(
        incoming["config_schema"]["properties"]["mappings"]["items"]["properties"]["remote"]
            .is_object()
    );

    // A default config with its blanks filled in is accepted as it is.
    let mut config = eab["default_config"].clone();
    config["sftp"]["host"] = json!("sftp.example.edu");
    config["sftp"]["username"] = json!("ferry");
    config["eab"]["import_version"] = json!("3");
    config["eab"]["institution_id"] = json!("1234");
    let (status, body) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "eab_notes_export", "name": "Notes", "config": config, "secrets": {"password": "pw"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_openapi_document_publishes_each_kinds_config_schema() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateIntegration"];
    assert_eq!(create["discriminator"]["propertyName"], "type");
    let variants = create["oneOf"].as_array().unwrap();
    assert_eq!(variants.len(), 9, "{create}");
    for kind in ["eab_notes_export", "hubspot_outgoing"] {
        let reference = create["discriminator"]["mapping"][kind].as_str().unwrap();
        let name = reference.rsplit('/').next().unwrap();
        let variant = &schemas[name];
        assert_eq!(variant["properties"]["type"]["const"], kind);
        let config_ref = variant["properties"]["config"]["$ref"].as_str().unwrap();
        let config = &schemas[config_ref.rsplit('/').next().unwrap()];
        assert_eq!(config["type"], "object", "{kind}: {config}");
        assert_eq!(
            variant["properties"]["secrets"]["additionalProperties"],
            false
        );
    }
    assert!(
        schemas["IntegrationConfig_eab_notes_export"]["properties"]["sftp"]["properties"]["host"]
            .is_object()
    );
    assert!(doc["paths"]["/api/v1/integration-types"]["get"].is_object());
}

#[tokio::test]
async fn the_error_dictionary_has_every_connectors_codes() {
    let app = spawn_app().await;
    let (status, dict) = app.get("/api/v1/errors").await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = dict
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    for code in [
        "match_conflict",
        "sftp_auth_failed",
        "sftp_host_key_changed",
        "missing_crm_id",
    ] {
        assert!(codes.contains(&code), "{code} is missing");
    }
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, codes, "sorted, each once");
}

#[tokio::test]
async fn browse_available_lists_every_platform_by_category_from_the_descriptions() {
    let app = spawn_app().await;
    let (cookie, _) = app.login().await;
    let (status, page) = app.page(&cookie, "/settings/integrations").await;
    assert_eq!(status, 200);
    let crm = page.find("<h2>CRM and SIS sync</h2>").expect("CRM heading");
    let sftp = page.find("<h2>SFTP outbound</h2>").expect("SFTP heading");
    let hubspot = page.find(">HubSpot</h3>").expect("HubSpot card");
    let outbound = page
        .find(">SFTP Outbound</h3>")
        .expect("SFTP Outbound card");
    assert!(crm < hubspot && hubspot < sftp && sftp < outbound, "{page}");
    assert!(
        page.contains("HubSpot incoming, HubSpot outgoing"),
        "{page}"
    );
    assert!(
        page.contains("Contacts, Conversations, EAB Notes"),
        "{page}"
    );
    assert!(page.contains("href=\"/settings/integrations/hubspot\""));
    assert!(!page.contains("configured"), "nothing is configured yet");

    // The card counts the institution's instances of its types.
    let (status, body) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "conversations_export", "name": "Daily", "secrets": {"password": "pw"},
                   "config": {"sftp": {"host": "sftp.example.edu", "username": "u"},
                              "filters": {"channels": ["sms"], "types": ["live_chat"], "directions": ["incoming"]}}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, page) = app.page(&cookie, "/settings/integrations").await;
    assert!(
        page.contains("Contacts, Conversations, EAB Notes · 1 configured"),
        "{page}"
    );
    // Learn More leads to each platform's page.
    let (status, page) = app
        .page(&cookie, "/settings/integrations/sftp-outbound")
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Daily"), "{page}");
    assert!(
        page.contains("u@sftp.example.edu"),
        "where it sends: {page}"
    );
}
