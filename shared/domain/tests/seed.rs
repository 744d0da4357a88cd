//! The seed of Kế hoạch 63/KH-UBND (deploy/seed/ke-hoach-63.json) checked against the plan's own
//! text (deploy/seed/ke-hoach-63-KH-UBND-2025.vi.txt).
//!
//! The seed is a hand transcription, so the test re-reads the source independently: it splits
//! the text into its 15 bullets, cuts out of each bullet the clause naming the lead units and the
//! clause naming the coordinating units, and requires that the seed's assignees account for every
//! name in those clauses and nothing else. A unit left out or added by mistake fails the test.

use std::collections::BTreeSet;

use remediation_domain::Command;
use remediation_domain::facts::Assignee;
use remediation_domain::seed::{Seed, SeedItem};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::is_nfc;

const SOURCE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/seed/ke-hoach-63-KH-UBND-2025.vi.txt"
));
const SEED_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/seed/ke-hoach-63.json"
));

const ITEM_COUNT: usize = 15;
const DISTRICTS_GROUP: &str = "ubnd-cac-huyen-thi-xa-thanh-pho";
/// Thanh Hóa's district-level units on the plan's date (Đông Sơn merged into the city 2025-01-01).
const DISTRICT_COUNT: usize = 26;

/// Other wordings the text uses for a unit or group: (name as registered, wording in the text).
const ALIASES: &[(&str, &str)] = &[
    // Items 4 and 7 spell out "UBND".
    (
        "UBND các huyện, thị xã, thành phố",
        "Ủy ban nhân dân các huyện, thị xã, thành phố",
    ),
    // Items 14 and 15 leave out "UBND"; they mean the same district committees.
    (
        "UBND các huyện, thị xã, thành phố",
        "các huyện, thị xã, thành phố",
    ),
    // Typo in item 2 ("Quản ký").
    (
        "Ban Quản lý Khu kinh tế Nghi Sơn và các khu công nghiệp",
        "Ban Quản ký Khu kinh tế Nghi Sơn và các khu công nghiệp",
    ),
    // Item 3 writes a hyphen where the official name has a comma.
    (
        "Sở Văn hóa, Thể thao và Du lịch",
        "Sở Văn hóa - Thể thao và Du lịch",
    ),
    // Item 10.
    ("các đơn vị liên quan", "các đơn vị có liên quan"),
];

/// Where a bullet starts naming its lead units; the longer phrases are tried first.
const LEAD_MARKERS: &[&str] = &[
    "giao nhiệm vụ khắc phục hạn chế này cho",
    "giao nhiệm vụ khắc phục hạn chế cho",
    "giao cho",
];
/// Where a bullet starts naming its coordinating units ("đơn vị phối hợp là …", "… phối hợp: …").
const COORDINATOR_MARKER: &str = "đơn vị phối hợp";
/// A clause that may close a bullet after the coordinators (item 5); it names no unit.
const TRAILING_CLAUSES: &[&str] = &["tiến hành khắc phục hạn chế"];
/// Words that only join names in a list.
const CONNECTIVES: &[&str] = &["và"];
/// Characters that only separate names in a list.
const SEPARATORS: &[char] = &[',', ';', '.', ':', '-'];

fn seed() -> Seed {
    Seed::from_json(SEED_JSON).expect("deploy/seed/ke-hoach-63.json must parse as a Seed")
}

/// NFC and lower case, so the text's capitalisation ("Khu Kinh tế", "Các đơn vị") does not matter.
fn fold(text: &str) -> String {
    text.nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// The bullet paragraphs of the source, without the leading "- ".
fn bullets() -> Vec<&'static str> {
    SOURCE
        .lines()
        .filter_map(|line| line.strip_prefix("- "))
        .collect()
}

/// The folded lead clause and coordinator clause of one bullet.
fn assignment_clauses(ordinal: u16, bullet: &str) -> (String, String) {
    let text = fold(bullet);
    let (start, marker) = LEAD_MARKERS
        .iter()
        .find_map(|marker| text.find(marker).map(|at| (at, *marker)))
        .unwrap_or_else(|| panic!("item {ordinal}: bullet names no lead units: {bullet}"));
    let assigned = &text[start + marker.len()..];
    let Some(at) = assigned.find(COORDINATOR_MARKER) else {
        return (assigned.to_owned(), String::new());
    };
    let leads = &assigned[..at];
    let coordinators = assigned[at + COORDINATOR_MARKER.len()..].trim_start();
    // "phối hợp là X" and "phối hợp: X" introduce the same list.
    let coordinators = coordinators
        .strip_prefix("là")
        .or_else(|| coordinators.strip_prefix(':'))
        .unwrap_or(coordinators);
    (leads.to_owned(), coordinators.to_owned())
}

/// The registered name of a unit or group.
fn display_name(seed: &Seed, assignee: &Assignee) -> String {
    let name = match assignee {
        Assignee::Unit(id) => seed
            .units
            .iter()
            .find(|u| &u.unit_id == id)
            .map(|u| u.name.as_str()),
        Assignee::Group(id) => seed
            .groups
            .iter()
            .find(|g| &g.group_id == id)
            .map(|g| g.name.as_str()),
    };
    name.unwrap_or_else(|| panic!("{assignee:?} is not defined in the seed"))
        .to_owned()
}

/// Every wording of `name` the text may use, folded.
fn wordings(name: &str) -> Vec<String> {
    let aliases = ALIASES
        .iter()
        .filter(|(registered, _)| *registered == name)
        .map(|(_, wording)| *wording);
    std::iter::once(name).chain(aliases).map(fold).collect()
}

/// Removes one occurrence of each name from `clause` and returns what is left, or the names that
/// could not be found.
///
/// Longer wordings go first, so that "Sở Y tế" is not taken out of "các cơ sở y tế công lập…" and
/// "các huyện, thị xã, thành phố" not out of "UBND các huyện, thị xã, thành phố".
fn remove_names(clause: &str, names: &[String]) -> Result<String, Vec<String>> {
    let mut candidates: Vec<(usize, String)> = names
        .iter()
        .enumerate()
        .flat_map(|(index, name)| wordings(name).into_iter().map(move |w| (index, w)))
        .collect();
    candidates.sort_by_key(|(_, wording)| std::cmp::Reverse(wording.chars().count()));

    let mut rest = clause.to_owned();
    let mut found = vec![false; names.len()];
    for (index, wording) in candidates {
        if !found[index] && rest.contains(&wording) {
            // A separator in its place keeps the words either side from running together.
            rest = rest.replacen(&wording, ";", 1);
            found[index] = true;
        }
    }
    let missing: Vec<String> = names
        .iter()
        .zip(found)
        .filter(|(_, found)| !found)
        .map(|(name, _)| name.clone())
        .collect();
    if missing.is_empty() {
        Ok(rest)
    } else {
        Err(missing)
    }
}

/// The words of `rest` that are neither separators, connectives nor a known closing clause.
fn substantive_words(rest: &str) -> Vec<String> {
    let mut rest = rest.to_owned();
    for clause in TRAILING_CLAUSES {
        rest = rest.replace(&fold(clause), ";");
    }
    rest.split(|c: char| c.is_whitespace() || SEPARATORS.contains(&c))
        .filter(|word| !word.is_empty() && !CONNECTIVES.contains(word))
        .map(str::to_owned)
        .collect()
}

/// Asserts that `clause` names exactly `assignees`: each one occurs and nothing else remains.
fn assert_clause_names(
    seed: &Seed,
    ordinal: u16,
    role: &str,
    clause: &str,
    assignees: &[Assignee],
) {
    let names: Vec<String> = assignees.iter().map(|a| display_name(seed, a)).collect();
    let rest = remove_names(clause, &names).unwrap_or_else(|missing| {
        panic!(
            "item {ordinal}: {role} {missing:?} not named in the text's {role} clause {clause:?}"
        )
    });
    let left = substantive_words(&rest);
    assert!(
        left.is_empty(),
        "item {ordinal}: the text's {role} clause {clause:?} names more than the seed's {names:?}; \
         left over: {left:?}"
    );
}

fn assert_unique<'a>(what: &str, ids: impl IntoIterator<Item = &'a str>) {
    let mut seen = BTreeSet::new();
    for id in ids {
        assert!(seen.insert(id), "duplicate {what} id {id}");
    }
}

fn item(seed: &Seed, ordinal: u16) -> &SeedItem {
    seed.items
        .iter()
        .find(|i| i.ordinal == ordinal)
        .unwrap_or_else(|| panic!("no item with ordinal {ordinal}"))
}

#[test]
fn seed_file_is_nfc() {
    // The domain normalises on the way in, but the file itself should already be NFC so that
    // grepping it for a name typed on a keyboard finds it.
    assert!(is_nfc(SEED_JSON), "ke-hoach-63.json is not NFC-normalised");
}

#[test]
fn items_are_the_fifteen_bullets_in_order() {
    let seed = seed();
    assert_eq!(
        seed.items.len(),
        ITEM_COUNT,
        "the plan lists 15 shortcomings"
    );
    let ordinals: Vec<u16> = seed.items.iter().map(|i| i.ordinal).collect();
    let expected: Vec<u16> = (1..=15).collect();
    assert_eq!(ordinals, expected, "item ordinals must run 1..=15 in order");
    assert_unique("item", seed.items.iter().map(|i| i.item_id.as_str()));
    for item in &seed.items {
        let ordinal = item.ordinal;
        assert_eq!(
            item.item_id.as_str(),
            format!("kh-63-2025-{ordinal:02}"),
            "item {ordinal}: id does not follow the plan id and ordinal"
        );
    }
}

#[test]
fn titles_are_worded_as_in_the_text() {
    let seed = seed();
    let bullets = bullets();
    assert_eq!(bullets.len(), ITEM_COUNT, "the source text has 15 bullets");
    for (ordinal, bullet) in (1..).zip(&bullets) {
        let title = item(&seed, ordinal).title.as_str();
        assert!(is_nfc(title), "item {ordinal}: title is not NFC");
        assert!(
            fold(bullet).contains(&fold(title)),
            "item {ordinal}: title {title:?} does not occur in bullet {bullet:?}"
        );
    }
}

#[test]
fn leads_and_coordinators_are_exactly_those_the_text_names() {
    let seed = seed();
    let bullets = bullets();
    assert_eq!(bullets.len(), ITEM_COUNT, "the source text has 15 bullets");
    for (ordinal, bullet) in (1..).zip(&bullets) {
        let item = item(&seed, ordinal);
        let (leads, coordinators) = assignment_clauses(ordinal, bullet);
        assert!(!item.leads.is_empty(), "item {ordinal}: no lead units");
        assert_clause_names(&seed, ordinal, "leads", &leads, &item.leads);
        assert_clause_names(
            &seed,
            ordinal,
            "coordinators",
            &coordinators,
            &item.coordinators,
        );
    }
}

#[test]
fn references_resolve() {
    let seed = seed();
    assert_unique("unit", seed.units.iter().map(|u| u.unit_id.as_str()));
    assert_unique("group", seed.groups.iter().map(|g| g.group_id.as_str()));
    let units: BTreeSet<&str> = seed.units.iter().map(|u| u.unit_id.as_str()).collect();
    let groups: BTreeSet<&str> = seed.groups.iter().map(|g| g.group_id.as_str()).collect();

    for group in &seed.groups {
        assert_unique(
            &format!("member of group {}", group.group_id),
            group.members.iter().map(|m| m.unit_id.as_str()),
        );
        for member in &group.members {
            assert!(
                units.contains(member.unit_id.as_str()),
                "group {}: member {} is not a registered unit",
                group.group_id,
                member.unit_id
            );
        }
    }

    for item in &seed.items {
        for assignee in item.leads.iter().chain(&item.coordinators) {
            let defined = match assignee {
                Assignee::Unit(id) => units.contains(id.as_str()),
                Assignee::Group(id) => groups.contains(id.as_str()),
            };
            assert!(
                defined,
                "item {}: {assignee:?} is not defined in the seed",
                item.ordinal
            );
        }
    }
}

#[test]
fn districts_group_has_every_district_from_the_plan_date() {
    let seed = seed();
    let districts = seed
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == DISTRICTS_GROUP)
        .expect("the seed defines the group of district committees");
    assert_eq!(districts.members.len(), DISTRICT_COUNT);
    for member in &districts.members {
        assert_eq!(
            member.from, seed.plan.issued_on,
            "district {} should be a member from the plan's date",
            member.unit_id
        );
    }
}

#[test]
fn plan_header_is_worded_as_in_the_text() {
    let seed = seed();
    let text = fold(SOURCE);
    for basis in &seed.plan.legal_basis {
        assert!(
            text.contains(&fold(basis.as_str())),
            "legal basis {basis:?} does not occur in the text"
        );
    }
    // The rule is a fragment of a sentence; the seed capitalises it and ends it with a period.
    let rule = fold(seed.plan.reporting_rule.as_str());
    let rule = rule.strip_suffix('.').unwrap_or(&rule);
    assert!(
        text.contains(rule),
        "reporting rule {:?} does not occur in the text",
        seed.plan.reporting_rule
    );
}

#[test]
fn commands_issue_the_plan_then_record_the_items() {
    let commands = seed().commands();
    assert!(
        matches!(commands.first(), Some(Command::IssuePlan(_))),
        "the first command must issue the plan"
    );
    let recorded = commands
        .iter()
        .filter(|c| matches!(c, Command::RecordItem(_)))
        .count();
    assert_eq!(recorded, ITEM_COUNT, "one RecordItem per item");
}
