//! Site names as LibreQoS writes them, so circuit names do not change for an operator who
//! switches: "Last, First" client sites become "First Last" (unless a part is a business
//! suffix: "Acme, LLC" stays), and every site sharing a name with another gets a
//! disambiguator: ` (first address segment)`, else ` (service name)`, else
//! ` (first 8 characters of the id)`, else ` (id)` — the first one not already taken.

use std::collections::{HashMap, HashSet};

/// One site's naming inputs.
#[derive(Debug, Clone)]
pub struct NameInput<'a> {
    /// UISP site id.
    pub id: &'a str,
    /// Name as UISP has it (trimmed).
    pub name: &'a str,
    /// A client (`endpoint`) site.
    pub client: bool,
    /// `description.address`.
    pub address: Option<&'a str>,
    /// `ucrm.service.name`.
    pub service: Option<&'a str>,
}

fn is_business_part(part: &str) -> bool {
    matches!(
        part.trim().trim_end_matches('.').to_ascii_lowercase().as_str(),
        "llc"
            | "inc"
            | "corp"
            | "corporation"
            | "co"
            | "company"
            | "ltd"
            | "pllc"
            | "llp"
            | "lp"
            | "pc"
            | "plc"
    )
}

/// "Doe, Jane" → "Jane Doe": exactly one comma, both parts non-empty, no digits, neither part
/// a business suffix; any other name is returned unchanged.
pub fn normalise_client_name(name: &str) -> String {
    let mut parts = name.split(',');
    let (Some(last), Some(first), None) = (parts.next(), parts.next(), parts.next()) else {
        return name.to_string();
    };
    let (last, first) = (last.trim(), first.trim());
    if last.is_empty()
        || first.is_empty()
        || name.chars().any(|c| c.is_ascii_digit())
        || is_business_part(last)
        || is_business_part(first)
    {
        return name.to_string();
    }
    format!("{first} {last}")
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The final name of every site, in input order. `renamed` receives (index, base name) for
/// each site that got a disambiguator.
pub fn site_names(sites: &[NameInput<'_>], renamed: &mut Vec<(usize, String)>) -> Vec<String> {
    let base: Vec<String> = sites
        .iter()
        .map(|s| {
            let n = s.name.trim();
            if s.client { normalise_client_name(n) } else { n.to_string() }
        })
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in base.iter().filter(|b| !b.is_empty()) {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    let dup = |b: &str| counts.get(b).copied().unwrap_or(0) > 1;
    let mut used: HashSet<String> =
        base.iter().filter(|b| !b.is_empty() && !dup(b)).cloned().collect();
    let mut out = Vec::with_capacity(sites.len());
    for (i, (s, b)) in sites.iter().zip(&base).enumerate() {
        if b.is_empty() || !dup(b) {
            out.push(b.clone());
            continue;
        }
        let mut candidates = Vec::new();
        if let Some(seg) = non_empty(s.address).and_then(|a| non_empty(a.split(',').next()))
            && seg != b
        {
            candidates.push(format!("{b} ({seg})"));
        }
        if let Some(svc) = non_empty(s.service)
            && svc != b
        {
            candidates.push(format!("{b} ({svc})"));
        }
        let short: String = s.id.chars().take(8).collect();
        if !short.is_empty() {
            candidates.push(format!("{b} ({short})"));
        }
        candidates.push(format!("{b} ({})", s.id));
        let name = candidates
            .into_iter()
            .find(|c| !used.contains(c))
            .unwrap_or_else(|| format!("{b} ({}) {i}", s.id));
        used.insert(name.clone());
        renamed.push((i, b.clone()));
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    //! Expectations ported from LibreQoS's `strategies/common.rs` tests.
    use super::*;

    fn site<'a>(
        id: &'a str,
        name: &'a str,
        address: Option<&'a str>,
        service: Option<&'a str>,
    ) -> NameInput<'a> {
        NameInput { id, name, client: true, address, service }
    }

    #[test]
    fn duplicate_site_names_prefer_address_segment() {
        let s = [
            site("site-1", "Acme", Some("123 Main St, Springfield"), Some("Primary")),
            site("site-2", "Acme", Some("456 Oak Ave, Springfield"), Some("Backup")),
        ];
        let mut r = Vec::new();
        assert_eq!(site_names(&s, &mut r), ["Acme (123 Main St)", "Acme (456 Oak Ave)"]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn duplicate_site_names_fall_back_to_service_name() {
        let s = [
            site("site-1", "Acme", None, Some("1000/1000 Mbps - Primary")),
            site("site-2", "Acme", None, Some("1000/1000 Mbps - Backup")),
        ];
        assert_eq!(
            site_names(&s, &mut Vec::new()),
            ["Acme (1000/1000 Mbps - Primary)", "Acme (1000/1000 Mbps - Backup)"]
        );
    }

    #[test]
    fn duplicate_site_names_fall_back_to_short_id() {
        let s = [
            site("abcd1234-0000-0000-0000-000000000000", "Acme", None, None),
            site("efgh5678-0000-0000-0000-000000000000", "Acme", None, None),
        ];
        assert_eq!(site_names(&s, &mut Vec::new()), ["Acme (abcd1234)", "Acme (efgh5678)"]);
    }

    #[test]
    fn same_address_falls_through_to_the_next_candidate() {
        let s = [
            site("aaaaaaaa-1", "Acme", Some("1 Main St"), None),
            site("bbbbbbbb-2", "Acme", Some("1 Main St"), None),
        ];
        assert_eq!(site_names(&s, &mut Vec::new()), ["Acme (1 Main St)", "Acme (bbbbbbbb)"]);
    }

    #[test]
    fn client_site_names_reorder_last_first_to_first_last() {
        assert_eq!(normalise_client_name("Rubio, Jorge"), "Jorge Rubio");
        assert_eq!(
            site_names(&[site("s", "Rubio, Jorge", None, None)], &mut Vec::new()),
            ["Jorge Rubio"]
        );
    }

    #[test]
    fn client_site_names_leave_business_suffix_names_unchanged() {
        assert_eq!(normalise_client_name("Acme, LLC"), "Acme, LLC");
        assert_eq!(normalise_client_name("Widgets, Inc."), "Widgets, Inc.");
        assert_eq!(normalise_client_name("Main St, 12"), "Main St, 12");
        assert_eq!(normalise_client_name("A, B, C"), "A, B, C");
    }

    #[test]
    fn normalisation_skips_non_client_sites() {
        let s = [NameInput {
            id: "s",
            name: "Rubio, Jorge",
            client: false,
            address: None,
            service: None,
        }];
        assert_eq!(site_names(&s, &mut Vec::new()), ["Rubio, Jorge"]);
    }
}
