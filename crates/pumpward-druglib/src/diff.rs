//! The difference between two libraries, for the reviewing pharmacist.
//!
//! Care areas are matched by id, entries within a care area by their key
//! (drug name without regard to case, and concentration by value; see
//! [`Entry::key`]). Fields are compared as their CSV cells
//! ([`crate::csv::entry_cells`]), so a change is shown exactly as it would
//! appear in the spreadsheet. Everything is sorted (care areas by id,
//! entries by label, fields in CSV column order), so the same two libraries
//! always give the same text.

use crate::csv::entry_cells;
use crate::model::{CareArea, Entry, EntryKey, Library};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// One changed field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field (CSV column name, or `name`, `description`, `weight_kg`).
    pub field: &'static str,
    /// Old value (empty when absent).
    pub old: String,
    /// New value (empty when absent).
    pub new: String,
}

/// A changed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryChange {
    /// The entry's label in the new library (`drug concentration`).
    pub entry: String,
    /// What changed.
    pub fields: Vec<FieldChange>,
}

/// The changes inside one care area present in both libraries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareAreaDiff {
    /// Care area id.
    pub id: String,
    /// Changes of the care area's own fields (name, weight range).
    pub fields: Vec<FieldChange>,
    /// Labels of added entries.
    pub added: Vec<String>,
    /// Labels of removed entries.
    pub removed: Vec<String>,
    /// Changed entries.
    pub changed: Vec<EntryChange>,
}

/// The whole difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryDiff {
    /// Old (id, version).
    pub from: (String, u32),
    /// New (id, version).
    pub to: (String, u32),
    /// Library-level field changes (name, description).
    pub fields: Vec<FieldChange>,
    /// Care areas only in the new library: (id, name, entry labels).
    pub care_areas_added: Vec<(String, String, Vec<String>)>,
    /// Care areas only in the old library: (id, name, entry count).
    pub care_areas_removed: Vec<(String, String, usize)>,
    /// Care areas in both that differ.
    pub care_areas: Vec<CareAreaDiff>,
}

impl LibraryDiff {
    /// True when the content is the same (apart from the version).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
            && self.care_areas_added.is_empty()
            && self.care_areas_removed.is_empty()
            && self.care_areas.is_empty()
    }
}

fn change(field: &'static str, old: &str, new: &str, out: &mut Vec<FieldChange>) {
    if old != new {
        out.push(FieldChange {
            field,
            old: old.to_owned(),
            new: new.to_owned(),
        });
    }
}

fn weight(ca: &CareArea) -> String {
    ca.weight_kg
        .map(|w| format!("{}–{} kg", w.min, w.max))
        .unwrap_or_default()
}

/// Sort key of an entry label: case-insensitive, then exact.
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
    v
}

/// Entries of a care area by key (first one wins: keys are unique in a
/// valid library).
fn by_key(ca: &CareArea) -> HashMap<EntryKey, &Entry> {
    let mut m = HashMap::new();
    for e in &ca.entries {
        if let Some(k) = e.key() {
            m.entry(k).or_insert(e);
        }
    }
    m
}

/// Compares two libraries.
pub fn diff(old: &Library, new: &Library) -> LibraryDiff {
    let mut fields = Vec::new();
    change("id", &old.id, &new.id, &mut fields);
    change("name", &old.name, &new.name, &mut fields);
    change(
        "description",
        &old.description,
        &new.description,
        &mut fields,
    );

    let olds: BTreeMap<&str, &CareArea> =
        old.care_areas.iter().map(|c| (c.id.as_str(), c)).collect();
    let news: BTreeMap<&str, &CareArea> =
        new.care_areas.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut d = LibraryDiff {
        from: (old.id.clone(), old.version),
        to: (new.id.clone(), new.version),
        fields,
        care_areas_added: Vec::new(),
        care_areas_removed: Vec::new(),
        care_areas: Vec::new(),
    };
    for (id, ca) in &news {
        if !olds.contains_key(id) {
            d.care_areas_added.push((
                (*id).to_owned(),
                ca.name.clone(),
                sorted(ca.entries.iter().map(Entry::label).collect()),
            ));
        }
    }
    for (id, ca) in &olds {
        match news.get(id) {
            None => {
                d.care_areas_removed
                    .push(((*id).to_owned(), ca.name.clone(), ca.entries.len()))
            }
            Some(nca) => {
                let cd = diff_care_area(ca, nca);
                if !(cd.fields.is_empty()
                    && cd.added.is_empty()
                    && cd.removed.is_empty()
                    && cd.changed.is_empty())
                {
                    d.care_areas.push(cd);
                }
            }
        }
    }
    d
}

fn diff_care_area(old: &CareArea, new: &CareArea) -> CareAreaDiff {
    let mut fields = Vec::new();
    change("name", &old.name, &new.name, &mut fields);
    change("weight_kg", &weight(old), &weight(new), &mut fields);
    let om = by_key(old);
    let nm = by_key(new);
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for (k, ne) in &nm {
        match om.get(k) {
            None => added.push(ne.label()),
            Some(oe) => {
                let mut f = Vec::new();
                for ((name, a), (_, b)) in entry_cells(oe).into_iter().zip(entry_cells(ne)) {
                    change(name, &a, &b, &mut f);
                }
                if !f.is_empty() {
                    changed.push(EntryChange {
                        entry: ne.label(),
                        fields: f,
                    });
                }
            }
        }
    }
    let removed = om
        .iter()
        .filter(|(k, _)| !nm.contains_key(*k))
        .map(|(_, e)| e.label())
        .collect();
    changed.sort_by(|a, b| {
        a.entry
            .to_lowercase()
            .cmp(&b.entry.to_lowercase())
            .then(a.entry.cmp(&b.entry))
    });
    CareAreaDiff {
        id: new.id.clone(),
        fields,
        added: sorted(added),
        removed: sorted(removed),
        changed,
    }
}

fn show(v: &str) -> &str {
    if v.is_empty() {
        "(none)"
    } else {
        v
    }
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} → {}",
            self.field,
            show(&self.old),
            show(&self.new)
        )
    }
}

impl LibraryDiff {
    /// The plain-text rendering with the two sides named by the caller
    /// ("version 2", "revision 7 (submitted)"): a draft's content still
    /// carries the version it was drafted from, so only the caller knows
    /// what the new side is.
    pub fn text(&self, from_label: &str, to_label: &str) -> String {
        let mut out = format!(
            "Library {} {from_label} → {} {to_label}\n",
            self.from.0, self.to.0
        );
        // Writing to a String cannot fail.
        let _ = self.write_changes(&mut out);
        out
    }

    fn write_changes(&self, f: &mut impl fmt::Write) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "No changes.");
        }
        for c in &self.fields {
            writeln!(f, "  ~ {c}")?;
        }
        for (id, name, entries) in &self.care_areas_added {
            writeln!(f, "+ care area {id} ({name}), {} entries", entries.len())?;
            for e in entries {
                writeln!(f, "    + {e}")?;
            }
        }
        for (id, name, n) in &self.care_areas_removed {
            writeln!(f, "- care area {id} ({name}), {n} entries")?;
        }
        for ca in &self.care_areas {
            writeln!(f, "care area {}:", ca.id)?;
            for c in &ca.fields {
                writeln!(f, "  ~ {c}")?;
            }
            for e in &ca.added {
                writeln!(f, "  + {e}")?;
            }
            for e in &ca.removed {
                writeln!(f, "  - {e}")?;
            }
            for e in &ca.changed {
                let parts: Vec<String> = e.fields.iter().map(ToString::to_string).collect();
                writeln!(f, "  ~ {}: {}", e.entry, parts.join("; "))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for LibraryDiff {
    /// A plain-text review rendering, one change per line, the sides named
    /// by the versions their contents carry (see [`LibraryDiff::text`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Library {} version {} → {} version {}",
            self.from.0, self.from.1, self.to.0, self.to.1
        )?;
        self.write_changes(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample_library;

    #[test]
    fn identical_libraries_have_no_diff() {
        let a = sample_library();
        let mut b = a.clone();
        b.version = 2;
        let d = diff(&a, &b);
        assert!(d.is_empty());
        assert_eq!(
            d.to_string(),
            "Library sample-library version 1 → sample-library version 2\nNo changes.\n"
        );
    }

    #[test]
    fn text_names_the_sides_as_the_caller_says() {
        let a = sample_library();
        let mut b = a.clone();
        b.name = "Renamed".into();
        // A draft made from version 1 still says version 1.
        let d = diff(&a, &b);
        assert!(d
            .to_string()
            .starts_with("Library sample-library version 1 → sample-library version 1\n"));
        let t = d.text("version 1", "revision 7 (submitted)");
        assert_eq!(
            t.lines().next(),
            Some("Library sample-library version 1 → sample-library revision 7 (submitted)")
        );
        assert_eq!(
            t.lines().skip(1).collect::<Vec<_>>(),
            d.to_string().lines().skip(1).collect::<Vec<_>>()
        );
    }

    #[test]
    fn changes_are_found_and_rendered_sorted() {
        let a = sample_library();
        let mut b = a.clone();
        b.version = 2;
        b.name = "Renamed".into();
        // Remove ED, add a new care area, change adult ICU.
        b.care_areas.retain(|c| c.id != "ed");
        let mut burn = b.care_areas[0].clone();
        burn.id = "burn-unit".into();
        burn.name = "Burn Unit".into();
        burn.entries.truncate(2);
        b.care_areas.push(burn);
        let icu = &mut b.care_areas[0];
        icu.weight_kg = None;
        let norepi = icu
            .entries
            .iter_mut()
            .find(|e| e.drug == "norepinephrine")
            .unwrap();
        norepi.hard_max = Some("100".parse().unwrap());
        norepi.soft_min = None;
        // Same concentration, written differently: a change, not add+remove.
        let epi = icu
            .entries
            .iter_mut()
            .find(|e| e.drug == "epinephrine")
            .unwrap();
        epi.concentration = "16 mcg/mL".parse().unwrap();
        icu.entries.retain(|e| e.drug != "vancomycin");
        let mut new = icu.entries[0].clone();
        new.drug = "bivalirudin".into();
        icu.entries.push(new);

        let d = diff(&a, &b);
        let text = d.to_string();
        let want = "\
Library sample-library version 1 → sample-library version 2
  ~ name: SAMPLE DATA – NOT FOR CLINICAL USE (Pumpward sample library) → Renamed
+ care area burn-unit (Burn Unit), 2 entries
    + heparin 25000 units/250 mL
    + norepinephrine 4 mg/250 mL
- care area ed (Emergency Department), 9 entries
care area adult-icu:
  ~ weight_kg: 30–300 kg → (none)
  + bivalirudin 25000 units/250 mL
  - vancomycin 1 g/250 mL
  ~ epinephrine 16 mcg/mL: concentration_amount: 4 → 16; concentration_unit: mg → mcg; concentration_volume_ml: 250 → 1
  ~ norepinephrine 4 mg/250 mL: soft_min: 1 → (none); hard_max: 80 → 100
";
        assert_eq!(text, want);
        // Stable: the same inputs give the same text.
        assert_eq!(diff(&a, &b).to_string(), text);
        // And the reverse diff mirrors it.
        let r = diff(&b, &a);
        assert_eq!(r.care_areas_added.len(), 1);
        assert_eq!(r.care_areas_removed[0].0, "burn-unit");
        assert_eq!(
            r.care_areas[0].added,
            vec!["vancomycin 1 g/250 mL".to_string()]
        );
    }
}
