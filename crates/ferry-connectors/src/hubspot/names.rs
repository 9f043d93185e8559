//! Seed 002: "search HubSpot for contacts with the same First name and Last name", then check
//! their phones. Searching once per contact spends HubSpot's scarcest budget (a few searches a
//! second) one contact at a time; instead the names a window needs are asked in few searches.
//! A search may OR up to six filter groups; each group asks for a set of first names crossed
//! with a set of last names. A group with one name on a side (a "star": `lastname EQ Diaz AND
//! firstname IN [ana, luis, …]`) returns exactly the pairs asked for; a wider group (`lastname
//! IN […] AND firstname IN […]`) also returns the other combinations, which are dropped here.
//! Every record is matched to the pair it belongs to by its own first and last name, compared
//! as HubSpot's EQ compares them (case-insensitively).

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::client::{
    Client, Filter, HubSpotError, MAX_FILTER_GROUPS, MAX_FILTERS, MAX_IN_VALUES, SEARCH_CAP,
    SEARCH_PAGE,
};
use super::config::ID_PROPERTY;
use crate::crm::{NameKey, NameResult, name_key};

/// Stars with fewer pairs than this are pooled into wider groups.
const MIN_STAR: usize = 4;
/// A search of wider groups that reports more results than this many per pair asked (and more
/// than a page) is not paged through: its wider groups are halved and asked again.
const WIDE_RESULTS_PER_PAIR: u64 = 3;
/// Properties a name search reads: the names to match records to pairs, the phones to check.
const NAME_SEARCH_PROPERTIES: [&str; 4] = ["firstname", "lastname", "phone", "mobilephone"];

/// One filter group of a name search: records whose first name is one of `first` and whose
/// last name is one of `last`, asked for the sake of `pairs`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NameGroup {
    first: BTreeSet<String>,
    last: BTreeSet<String>,
    pairs: Vec<NameKey>,
}

impl NameGroup {
    fn of(pairs: Vec<NameKey>) -> NameGroup {
        NameGroup {
            first: pairs.iter().map(|(f, _)| f.clone()).collect(),
            last: pairs.iter().map(|(_, l)| l.clone()).collect(),
            pairs,
        }
    }

    /// Whether the group returns only the pairs asked for (one name on a side).
    fn exact(&self) -> bool {
        self.first.len() == 1 || self.last.len() == 1
    }

    fn filters(&self) -> Vec<Filter> {
        let side = |property: &str, names: &BTreeSet<String>| match names.iter().next() {
            Some(only) if names.len() == 1 => Filter::value(property, "EQ", only.clone()),
            _ => Filter::one_of(property, names),
        };
        vec![side("firstname", &self.first), side("lastname", &self.last)]
    }

    /// Two groups with half the pairs each (by last name, so that each has fewer names).
    fn halve(mut self) -> [NameGroup; 2] {
        self.pairs.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        let second = self.pairs.split_off(self.pairs.len() / 2);
        [NameGroup::of(self.pairs), NameGroup::of(second)]
    }
}

/// The groups that ask for `wanted`, every pair in exactly one: stars chosen greedily (the name,
/// first or last, shared by the most pairs not yet asked for, with those partners), at most
/// [`MAX_IN_VALUES`] names a side; the pairs left in small stars pooled into wider groups.
fn plan_name_groups(wanted: &BTreeSet<NameKey>) -> Vec<NameGroup> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Uncovered partners of each first name (side 0) and last name (side 1).
    let mut partners: [HashMap<&str, BTreeSet<&str>>; 2] = [HashMap::new(), HashMap::new()];
    for (f, l) in wanted {
        partners[0]
            .entry(f.as_str())
            .or_default()
            .insert(l.as_str());
        partners[1]
            .entry(l.as_str())
            .or_default()
            .insert(f.as_str());
    }
    let mut heap: BinaryHeap<(usize, Reverse<(usize, &str)>)> = (0..2)
        .flat_map(|side| {
            partners[side]
                .iter()
                .map(move |(name, p)| (p.len(), Reverse((side, *name))))
        })
        .collect();
    let mut groups: Vec<NameGroup> = Vec::new();
    let mut pooled: Vec<NameKey> = Vec::new();
    while let Some((count, Reverse((side, name)))) = heap.pop() {
        let now = partners[side].get(name).map_or(0, BTreeSet::len);
        if now == 0 {
            continue;
        }
        if now < count {
            heap.push((now, Reverse((side, name))));
            continue;
        }
        let taken = std::mem::take(partners[side].get_mut(name).expect("counted above"));
        for other in &taken {
            if let Some(p) = partners[1 - side].get_mut(other) {
                p.remove(name);
            }
        }
        let pairs: Vec<NameKey> = taken
            .iter()
            .map(|other| {
                if side == 0 {
                    (name.to_string(), other.to_string())
                } else {
                    (other.to_string(), name.to_string())
                }
            })
            .collect();
        if pairs.len() < MIN_STAR {
            pooled.extend(pairs);
        } else {
            groups.extend(
                pairs
                    .chunks(MAX_IN_VALUES)
                    .map(|c| NameGroup::of(c.to_vec())),
            );
        }
    }
    pooled.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    groups.extend(
        pooled
            .chunks(MAX_IN_VALUES)
            .map(|c| NameGroup::of(c.to_vec())),
    );
    groups
}

/// HubSpot's contacts with each wanted first and last name, with their phones (a record with
/// two phones gives two results), in as few searches as it takes. `done` gets each pair's
/// results as soon as the search that asked for it is through; it returns `false` to stop.
pub(super) async fn search_names(
    client: &Client,
    wanted: &BTreeSet<NameKey>,
    mut done: impl FnMut(NameKey, Vec<NameResult>) -> bool,
) -> Result<(), HubSpotError> {
    let mut queue: VecDeque<NameGroup> = plan_name_groups(wanted).into();
    while !queue.is_empty() {
        // Exact groups first (they never need halving), six a search.
        let exact = queue.iter().take(MAX_FILTER_GROUPS).all(NameGroup::exact);
        let batch: Vec<NameGroup> = std::iter::from_fn(|| queue.pop_front())
            .take(MAX_FILTER_GROUPS)
            .collect();
        let pairs: usize = batch.iter().map(|g| g.pairs.len()).sum();
        let limit =
            (!exact).then(|| (SEARCH_PAGE as u64).max(WIDE_RESULTS_PER_PAIR * pairs as u64));
        match search_name_groups(client, &batch, limit).await? {
            Some(found) => {
                for (k, results) in found {
                    if !done(k, results) {
                        return Ok(());
                    }
                }
            }
            None => {
                // Mostly other people's names: ask again in narrower groups.
                for g in batch.into_iter().rev() {
                    if g.exact() {
                        queue.push_front(g);
                    } else {
                        let [a, b] = g.halve();
                        queue.push_front(b);
                        queue.push_front(a);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Runs one search of up to [`MAX_FILTER_GROUPS`] groups to the end; returns the results of
/// each pair the groups ask for, every record filed under its own first and last name. With
/// `limit`, gives up (`None`) when the first page reports more results than that. Past
/// HubSpot's 10,000-result cap, the search starts again after the last record seen (results
/// come in record ID order).
async fn search_name_groups(
    client: &Client,
    groups: &[NameGroup],
    limit: Option<u64>,
) -> Result<Option<HashMap<NameKey, Vec<NameResult>>>, HubSpotError> {
    let mut found: HashMap<NameKey, Vec<NameResult>> = groups
        .iter()
        .flat_map(|g| g.pairs.iter().map(|k| (k.clone(), Vec::new())))
        .collect();
    let properties: Vec<String> = NAME_SEARCH_PROPERTIES
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut past: Option<String> = None;
    loop {
        let filters: Vec<Vec<Filter>> = groups
            .iter()
            .map(|g| {
                let mut f = g.filters();
                if let Some(id) = &past {
                    f.push(Filter::value(ID_PROPERTY, "GT", id.clone()));
                }
                f
            })
            .collect();
        debug_assert!(
            filters.len() <= MAX_FILTER_GROUPS
                && filters.iter().map(Vec::len).sum::<usize>() <= MAX_FILTERS
        );
        let mut after: Option<String> = None;
        let mut seen: u64 = 0;
        loop {
            let page = client
                .search_groups(
                    &filters,
                    Some((ID_PROPERTY, "ASCENDING")),
                    &properties,
                    after.as_deref(),
                )
                .await?;
            if let Some(limit) = limit.filter(|_| past.is_none() && after.is_none())
                && page.total > limit
            {
                return Ok(None);
            }
            seen += page.records.len() as u64;
            for r in &page.records {
                let key = name_key(
                    r.get("firstname").unwrap_or_default(),
                    r.get("lastname").unwrap_or_default(),
                );
                let Some(results) = found.get_mut(&key) else {
                    continue;
                };
                for phone in ["phone", "mobilephone"]
                    .into_iter()
                    .filter_map(|p| r.get(p))
                {
                    results.push(NameResult {
                        id: r.id.clone(),
                        phone: Some(phone.to_string()),
                    });
                }
            }
            let last = page.records.last().map(|r| r.id.clone());
            match (page.after, last) {
                (Some(_), Some(last)) if seen + SEARCH_PAGE as u64 > SEARCH_CAP => {
                    past = Some(last);
                    break;
                }
                (Some(a), Some(_)) => after = Some(a),
                _ => return Ok(Some(found)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeSet<NameKey> {
        pairs.into_iter().map(|(f, l)| name_key(&f, &l)).collect()
    }

    /// Every pair asked for exactly once, by a group whose names include it, within HubSpot's
    /// limits (with the extra `hs_object_id GT` filter a search past the 10,000 cap adds).
    fn check(wanted: &BTreeSet<NameKey>, groups: &[NameGroup]) {
        let mut seen = BTreeSet::new();
        for g in groups {
            assert!(!g.pairs.is_empty());
            assert!(
                g.first.len() <= MAX_IN_VALUES && g.last.len() <= MAX_IN_VALUES,
                "{g:?}"
            );
            assert!(MAX_FILTER_GROUPS * (g.filters().len() + 1) <= MAX_FILTERS);
            for p in &g.pairs {
                assert!(
                    g.first.contains(&p.0) && g.last.contains(&p.1),
                    "{p:?} in {g:?}"
                );
                assert!(seen.insert(p.clone()), "{p:?} asked for twice");
            }
        }
        assert_eq!(&seen, wanted);
    }

    #[test]
    fn names_shared_by_many_pairs_make_exact_groups() {
        // 12 first names x 9 last names, most combinations wanted (as in a big institution).
        let w = wanted((0..12).flat_map(|f| {
            (0..9)
                .filter(move |l| (f + l) % 5 != 0)
                .map(move |l| (format!("First{f}"), format!("Last{l}")))
        }));
        let groups = plan_name_groups(&w);
        check(&w, &groups);
        assert!(groups.iter().all(NameGroup::exact), "{groups:?}");
        assert!(
            groups.len() <= 12,
            "one group per name at most: {}",
            groups.len()
        );
        // A star says its one name with EQ, its others with IN (lower-cased).
        let star = &groups[0];
        let filters = star.filters();
        assert!(
            filters.iter().any(|f| f.json()["operator"] == "EQ")
                && filters.iter().any(|f| f.json()["operator"] == "IN"),
            "{filters:?}"
        );
    }

    #[test]
    fn lone_pairs_are_pooled_into_wider_groups_that_halve() {
        let mut pairs: Vec<(String, String)> = (0..250)
            .map(|i| (format!("Only{i}"), format!("Lone{i}")))
            .collect();
        // Five Diazes: one exact group.
        pairs.extend(
            ["Ana", "Luis", "Maria", "Jo", "Mei"].map(|f| (f.to_string(), " DIAZ ".to_string())),
        );
        let w = wanted(pairs);
        let groups = plan_name_groups(&w);
        check(&w, &groups);
        let (exact, wide): (Vec<&NameGroup>, Vec<&NameGroup>) =
            groups.iter().partition(|g| g.exact());
        assert_eq!(exact.len(), 1);
        assert_eq!(
            exact[0].filters()[1],
            Filter::value("lastname", "EQ", "diaz")
        );
        assert_eq!(
            wide.iter().map(|g| g.pairs.len()).collect::<Vec<_>>(),
            [100, 100, 50],
            "lone pairs, 100 a group"
        );
        let [a, b] = wide[2].clone().halve();
        check(
            &wide[2].pairs.iter().cloned().collect(),
            &[a.clone(), b.clone()],
        );
        assert_eq!((a.pairs.len(), b.pairs.len()), (25, 25));
    }

    #[test]
    fn a_name_with_more_than_100_partners_is_split() {
        let w = wanted((0..250).map(|i| (format!("First{i}"), "Smith".to_string())));
        let groups = plan_name_groups(&w);
        check(&w, &groups);
        assert_eq!(
            groups.iter().map(|g| g.pairs.len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert!(groups.iter().all(NameGroup::exact));
    }
}
