//! Settings → Integrations: seed 001's Browse Available, built from the registered connectors'
//! descriptions (their platform cards, grouped by category).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{Nav, ui_error};
use crate::AppState;
use crate::auth::Auth;

struct Card {
    id: &'static str,
    name: &'static str,
    summary: &'static str,
    /// The labels of the instance types it offers, joined with commas.
    types: String,
    /// Instances of its types this institution has.
    configured: usize,
}

struct Group {
    label: &'static str,
    platforms: Vec<Card>,
}

#[derive(Template, WebTemplate)]
#[template(path = "integrations.html")]
struct BrowsePage {
    nav: Nav,
    groups: Vec<Group>,
}

/// Every platform this build has a connector for, by category, with how many instances of it
/// the institution has.
pub async fn browse(State(state): State<AppState>, auth: Auth) -> Response {
    let instances = match state.store.list_integrations(auth.institution_id()).await {
        Ok(all) => all,
        Err(e) => return ui_error(e.into()),
    };
    let mut groups: Vec<Group> = Vec::new();
    for (category, platform, kinds) in state.registry.platforms() {
        let card = Card {
            id: platform.id,
            name: platform.name,
            summary: platform.summary,
            types: kinds.iter().map(|d| d.label).collect::<Vec<_>>().join(", "),
            configured: instances
                .iter()
                .filter(|i| kinds.iter().any(|d| d.kind == i.kind))
                .count(),
        };
        match groups.last_mut() {
            Some(g) if g.label == category.label() => g.platforms.push(card),
            _ => groups.push(Group {
                label: category.label(),
                platforms: vec![card],
            }),
        }
    }
    BrowsePage {
        nav: Nav::new(&state, &auth, "integrations"),
        groups,
    }
    .into_response()
}
