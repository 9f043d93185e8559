//! SOQL: the subset, paging with locators, snapshots, errors.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::env;

fn q(soql: &str) -> String {
    format!(
        "query?{}",
        serde_urlencoded::to_string([("q", soql)]).unwrap()
    )
}

#[tokio::test]
async fn filters_order_and_limit() {
    let env = env().await;
    env.seed("Contact", vec![
        json!({"FirstName": "Ana", "LastName": "Diaz", "Email": "ana@state.edu", "Phone": "617-555-0101", "SystemModstamp": "2026-01-01T10:00:00Z"}),
        json!({"FirstName": "Bo", "LastName": "Diaz", "Email": "bo@other.org", "SystemModstamp": "2026-01-01T10:00:00Z"}),
        json!({"FirstName": "Cy", "LastName": "Ng", "Email": null, "Phone": "617-555-0103", "SystemModstamp": "2026-01-02T10:00:00Z"}),
        json!({"FirstName": "Di", "LastName": "Ng", "Email": "di@state.edu", "HasOptedOutOfEmail": true, "SystemModstamp": "2026-01-03T10:00:00Z", "IsDeleted": true}),
    ]).await;
    let names = |r: &Value| -> Vec<String> {
        r["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["FirstName"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "SELECT FirstName FROM Contact WHERE LastName = 'diaz'",
            vec!["Ana", "Bo"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE Email LIKE '%@STATE.edu'",
            vec!["Ana"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE Email = null",
            vec!["Cy"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE Email != null ORDER BY FirstName DESC",
            vec!["Bo", "Ana"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE Email != 'ana@state.edu'",
            vec!["Bo", "Cy"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE FirstName IN ('Cy', 'Bo') ORDER BY FirstName",
            vec!["Bo", "Cy"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE FirstName NOT IN ('Cy', 'Bo')",
            vec!["Ana"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE SystemModstamp > 2026-01-01T10:00:00Z",
            vec!["Cy"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE SystemModstamp >= 2026-01-01T10:00:00.000+0000 AND SystemModstamp <= 2026-01-01T10:00:00Z",
            vec!["Ana", "Bo"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE SystemModstamp < 2026-01-02T10:00:00Z OR (LastName = 'Ng' AND Phone LIKE '617%')",
            vec!["Ana", "Bo", "Cy"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE NOT LastName = 'Diaz'",
            vec!["Cy"],
        ),
        (
            "SELECT FirstName FROM Contact ORDER BY Email ASC NULLS LAST, FirstName LIMIT 2",
            vec!["Ana", "Bo"],
        ),
        (
            "SELECT FirstName FROM Contact ORDER BY Email NULLS FIRST LIMIT 1",
            vec!["Cy"],
        ),
        (
            "SELECT FirstName FROM Contact WHERE HasOptedOutOfEmail = false ORDER BY SystemModstamp DESC, FirstName",
            vec!["Cy", "Ana", "Bo"],
        ),
    ];
    for (soql, want) in cases {
        let r = env.get(&q(soql)).await;
        assert_eq!(r.status, 200, "{soql}: {}", r.body);
        assert_eq!(names(&r.body), want, "{soql}");
        assert_eq!(r.body["totalSize"], want.len(), "{soql}");
    }
    // queryAll sees the deleted one.
    let all = env
        .get(&format!(
            "queryAll?{}",
            serde_urlencoded::to_string([(
                "q",
                "SELECT FirstName, IsDeleted FROM Contact WHERE LastName = 'Ng'"
            )])
            .unwrap()
        ))
        .await;
    assert_eq!(all.body["totalSize"], 2);
    assert_eq!(all.body["records"][1]["IsDeleted"], true);
    let rec = &env
        .get(&q("SELECT Id, SystemModstamp FROM Contact LIMIT 1"))
        .await
        .body["records"][0];
    assert_eq!(rec["attributes"]["type"], "Contact");
    assert_eq!(rec["SystemModstamp"], "2026-01-01T10:00:00.000+0000");
}

#[tokio::test]
async fn malformed_queries_get_salesforce_errors() {
    let env = env().await;
    for (soql, code) in [
        (
            "SELECT Id FROM Contact WHERE LastName = 'a' AND FirstName = 'b' OR Email = 'c'",
            "MALFORMED_QUERY",
        ),
        ("SELECT COUNT() FROM Contact", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Contact GROUP BY LastName",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Contact OFFSET 5", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Contact WHERE LastName LIKE",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Account", "INVALID_TYPE"),
        ("SELECT Shoe_Size__c FROM Contact", "INVALID_FIELD"),
        (
            "SELECT Id FROM Contact WHERE SystemModstamp > '2026-01-01T00:00:00Z'",
            "INVALID_FIELD",
        ),
    ] {
        let r = env.get(&q(soql)).await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, code),
            "{soql}: {}",
            r.body
        );
    }
    assert_eq!(env.get("query").await.error_code(), "MALFORMED_QUERY");
}

#[tokio::test]
async fn pages_of_2000_with_locators_and_snapshots() {
    let env = env().await;
    let rows: Vec<Value> = (0..4_500)
        .map(|i| json!({"LastName": format!("P{i:05}"), "SystemModstamp": "2026-02-01T00:00:00Z"}))
        .collect();
    env.seed("Contact", rows).await;
    let first = env
        .get(&q(
            "SELECT Id, LastName FROM Contact ORDER BY SystemModstamp, Id",
        ))
        .await;
    assert_eq!(first.body["totalSize"], 4_500);
    assert_eq!(first.body["done"], false);
    assert_eq!(first.body["records"].as_array().unwrap().len(), 2_000);
    let next = first.body["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(
        next.starts_with("/services/data/v62.0/query/01g") && next.ends_with("-2000"),
        "{next}"
    );
    // A write after the query does not change its pages (a snapshot).
    let late = env
        .call(
            Method::POST,
            "sobjects/Contact",
            Some(json!({"LastName": "Late"})),
        )
        .await;
    assert_eq!(late.status, 201);
    let (all, pages) = env
        .query_all_pages(
            "SELECT Id, LastName FROM Contact WHERE LastName LIKE 'P%' ORDER BY SystemModstamp, Id",
            None,
        )
        .await;
    assert_eq!((all.len(), pages), (4_500, 3));
    let names: Vec<&str> = all
        .iter()
        .map(|r| r["LastName"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        names, sorted,
        "ids grow with creation, so equal stamps keep creation order"
    );
    let page2 = env.get(&next).await;
    assert_eq!(page2.body["records"].as_array().unwrap().len(), 2_000);
    assert!(
        page2.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["LastName"] != "Late")
    );
    // A batch size header gives smaller pages.
    let (small, pages) = env
        .query_all_pages(
            "SELECT Id FROM Contact WHERE LastName LIKE 'P00%'",
            Some(200),
        )
        .await;
    assert_eq!((small.len(), pages), (1_000, 5));
    // Bad locators.
    assert_eq!(
        env.get("query/01gnope-2000").await.error_code(),
        "INVALID_QUERY_LOCATOR"
    );
}

#[tokio::test]
async fn only_ten_locators_stay_open() {
    let env = env().await;
    env.seed(
        "Contact",
        (0..300)
            .map(|i| json!({"LastName": format!("L{i}")}))
            .collect(),
    )
    .await;
    let mut urls = Vec::new();
    for _ in 0..11 {
        let r = env
            .call_with(
                Method::GET,
                &q("SELECT Id FROM Contact"),
                None,
                &[("Sforce-Query-Options", "batchSize=200")],
            )
            .await;
        urls.push(r.body["nextRecordsUrl"].as_str().unwrap().to_string());
    }
    assert_eq!(
        env.get(&urls[0]).await.error_code(),
        "INVALID_QUERY_LOCATOR"
    );
    let last = env.get(&urls[10]).await;
    assert_eq!((last.status, last.body["done"].clone()), (200, json!(true)));
    assert_eq!(
        env.get(&urls[10]).await.error_code(),
        "INVALID_QUERY_LOCATOR",
        "a finished locator is closed"
    );
}

#[tokio::test]
async fn a_keyset_cursor_on_systemmodstamp_and_id_pages_through_equal_stamps() {
    let env = env().await;
    // 7 records share one stamp, 3 another: pages of 4 cut through the shared stamp.
    let mut seed: Vec<Value> = (0..7)
        .map(|i| json!({"LastName": format!("A{i}"), "SystemModstamp": "2026-04-01T08:00:00Z"}))
        .collect();
    seed.extend(
        (0..3).map(
            |i| json!({"LastName": format!("B{i}"), "SystemModstamp": "2026-04-01T08:00:01Z"}),
        ),
    );
    env.seed("Contact", seed).await;
    let mut cursor: Option<(String, String)> = None;
    let mut seen = Vec::new();
    loop {
        let filter = match &cursor {
            None => String::new(),
            Some((stamp, id)) => format!(
                "WHERE SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > '{id}') "
            ),
        };
        let soql = format!(
            "SELECT Id, LastName, SystemModstamp FROM Contact {filter}ORDER BY SystemModstamp, Id LIMIT 4"
        );
        let r = env.get(&q(&soql)).await;
        assert_eq!(r.status, 200, "{soql}: {}", r.body);
        let page = r.body["records"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        cursor = Some((
            last["SystemModstamp"].as_str().unwrap().to_string(),
            last["Id"].as_str().unwrap().to_string(),
        ));
        seen.extend(
            page.iter()
                .map(|x| x["LastName"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(
        seen,
        ["A0", "A1", "A2", "A3", "A4", "A5", "A6", "B0", "B1", "B2"]
    );
    // A 15-character id literal compares as its 18-character form.
    let all = env.emu.state().records("Contact");
    let r = env
        .get(&q(&format!(
            "SELECT LastName FROM Contact WHERE Id = '{}'",
            &all[3].id[..15]
        )))
        .await;
    assert_eq!(r.body["records"][0]["LastName"], "A3");
}
