//! SBOMs: the components (with their purl and CPE identifiers), the
//! dependency graph and CycloneDX VEX statements.
//!
//! Accepted: CycloneDX JSON 1.2–1.6 (`components`, nested components,
//! `metadata.component`, `dependencies[].ref/dependsOn`, `vulnerabilities[]`
//! with `analysis` and `affects`), SPDX 2.x JSON (`packages` with
//! `versionInfo`, `supplier`, `externalRefs` of type `cpe23Type`,
//! `cpe22Type` and `purl`; `relationships`) and SPDX 2.x tag-value (the same
//! package fields; `<text>…</text>` values may span lines; files are
//! skipped) and CycloneDX XML 1.2–1.6 (the same parts as the JSON; no DTDs,
//! so no entity expansion).
//!
//! Nothing here trusts the graph: a dependency on an unknown ref, a duplicate
//! id, a cycle are warnings, and the cycle check is iterative, so 100,000
//! components or a 100,000-deep chain cost memory, not stack.

use crate::json::{excerpt, parse_bytes, Node, ParseError, PathBuf, Walk, Warning};
use std::collections::{BTreeMap, HashMap};

/// Which format an SBOM came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    /// CycloneDX JSON.
    CycloneDx,
    /// CycloneDX XML.
    CycloneDxXml,
    /// SPDX JSON.
    SpdxJson,
    /// SPDX tag-value.
    SpdxTagValue,
}

/// One component or package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SbomComponent {
    /// `bom-ref` or `SPDXID` (generated `#n` when absent).
    pub id: String,
    /// CycloneDX `type` (library, firmware, device…); empty for SPDX.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `version` / `versionInfo`.
    pub version: Option<String>,
    /// `supplier.name` / `supplier`.
    pub supplier: Option<String>,
    /// `purl` or an SPDX purl external reference.
    pub purl: Option<String>,
    /// `cpe` or SPDX cpe23Type / cpe22Type external references.
    pub cpes: Vec<String>,
}

/// A CycloneDX VEX statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VexStatement {
    /// Vulnerability id (CVE-…).
    pub id: String,
    /// `analysis.state` (`exploitable`, `not_affected`, `resolved`, …).
    pub state: Option<String>,
    /// `analysis.justification`.
    pub justification: Option<String>,
    /// `analysis.response`.
    pub response: Vec<String>,
    /// `analysis.detail`.
    pub detail: Option<String>,
    /// `affects[].ref`.
    pub affects: Vec<String>,
}

/// A parsed SBOM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// Format.
    pub format: SbomFormat,
    /// `specVersion` / `spdxVersion`.
    pub spec_version: String,
    /// What the SBOM describes (`metadata.component`; for SPDX the
    /// package(s) the document DESCRIBES are marked in `described`).
    pub subject: Option<SbomComponent>,
    /// Every component, nested ones flattened, in document order.
    pub components: Vec<SbomComponent>,
    /// SPDX ids the document describes.
    pub described: Vec<String>,
    /// Dependencies: id → ids it depends on (or contains).
    pub dependencies: BTreeMap<String, Vec<String>>,
    /// VEX statements.
    pub vex: Vec<VexStatement>,
    /// Warnings.
    pub warnings: Vec<Warning>,
}

/// Parses a CycloneDX JSON or SPDX JSON / tag-value SBOM (the format is
/// detected from the content).
pub fn parse(bytes: &[u8]) -> Result<Sbom, ParseError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = body.iter().copied().find(|c| !c.is_ascii_whitespace());
    if first == Some(b'{') {
        let value = parse_bytes(bytes)?;
        let root_path = PathBuf::root();
        let root = Node::new(&value, &root_path);
        let obj = root.object()?;
        if obj.contains_key("spdxVersion") {
            return spdx_json(root);
        }
        if obj.get("bomFormat").and_then(|f| f.as_str()) == Some("CycloneDX") {
            return cyclonedx(root);
        }
        return Err(root.expected("a CycloneDX (bomFormat) or SPDX (spdxVersion) document"));
    }
    if first == Some(b'<') {
        return cyclonedx_xml(body);
    }
    spdx_tag_value(bytes)
}

fn component(c: Node<'_>, n: usize) -> Result<SbomComponent, ParseError> {
    let mut cpes = Vec::new();
    if let Some(cpe) = c.opt_string("cpe")? {
        cpes.push(cpe);
    }
    Ok(SbomComponent {
        id: c.opt_string("bom-ref")?.unwrap_or_else(|| format!("#{n}")),
        kind: c.opt_string("type")?.unwrap_or_default(),
        name: c.opt_string("name")?.unwrap_or_default(),
        version: c.opt_string("version")?.filter(|v| !v.is_empty()),
        supplier: c.with("supplier", |s| s.opt_string("name"))?.flatten(),
        purl: c.opt_string("purl")?,
        cpes,
    })
}

fn cyclonedx(root: Node<'_>) -> Result<Sbom, ParseError> {
    let mut components = Vec::new();
    // Nested components, flattened in document order. The recursion is as
    // deep as the JSON, which the parser bounds (128 levels).
    fn walk(
        list: Node<'_>,
        out: &mut Vec<SbomComponent>,
        deps: &mut BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<String>, ParseError> {
        list.each("components", |_, c| {
            let comp = component(c, out.len())?;
            let id = comp.id.clone();
            out.push(comp);
            // A nested component is contained in its parent.
            let children = walk(c, out, deps)?;
            if !children.is_empty() {
                deps.entry(id.clone()).or_default().extend(children);
            }
            Ok(id)
        })
    }
    let mut dependencies = BTreeMap::new();
    walk(root, &mut components, &mut dependencies)?;
    let subject = root
        .with("metadata", |m| {
            m.with("component", |c| component(c, usize::MAX))
        })?
        .flatten();
    root.each("dependencies", |_, d| {
        let r = d.req_string("ref")?;
        let on = d.strings("dependsOn")?;
        dependencies.entry(r).or_default().extend(on);
        Ok(())
    })?;
    let vex = root.each("vulnerabilities", |_, v| {
        let mut s = VexStatement {
            id: v.opt_string("id")?.unwrap_or_default(),
            affects: v.each("affects", |_, a| a.req_string("ref"))?,
            ..VexStatement::default()
        };
        v.with("analysis", |a| {
            s.state = a.opt_string("state")?;
            s.justification = a.opt_string("justification")?;
            s.response = a.strings("response")?;
            s.detail = a.opt_string("detail")?;
            Ok(())
        })?;
        Ok(s)
    })?;
    let mut sbom = Sbom {
        format: SbomFormat::CycloneDx,
        spec_version: root.opt_string("specVersion")?.unwrap_or_default(),
        subject,
        components,
        described: Vec::new(),
        dependencies,
        vex,
        warnings: Vec::new(),
    };
    check_graph(&mut sbom);
    Ok(sbom)
}

fn spdx_refs(kind: &str, locator: String, comp: &mut SbomComponent) {
    match kind {
        "cpe23Type" | "cpe22Type" => comp.cpes.push(locator),
        "purl" => {
            comp.purl.get_or_insert(locator);
        }
        _ => {}
    }
}

fn supplier(s: String) -> Option<String> {
    // "Organization: X" / "Person: X" / "NOASSERTION".
    let t = s
        .split_once(':')
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or(s);
    (!t.is_empty() && t != "NOASSERTION").then_some(t)
}

fn relationship(
    deps: &mut BTreeMap<String, Vec<String>>,
    described: &mut Vec<String>,
    a: String,
    ty: &str,
    b: String,
) {
    match ty.to_ascii_uppercase().as_str() {
        // Trivy writes DESCRIBE for DESCRIBES.
        "DESCRIBES" | "DESCRIBE" if a == "SPDXRef-DOCUMENT" => described.push(b),
        "DESCRIBED_BY" if b == "SPDXRef-DOCUMENT" => described.push(a),
        "DEPENDS_ON" | "CONTAINS" | "STATIC_LINK" | "DYNAMIC_LINK" => {
            deps.entry(a).or_default().push(b)
        }
        "DEPENDENCY_OF" | "CONTAINED_BY" => deps.entry(b).or_default().push(a),
        _ => {}
    }
}

fn spdx_json(root: Node<'_>) -> Result<Sbom, ParseError> {
    let components = root.each("packages", |i, p| {
        let mut c = SbomComponent {
            id: p.opt_string("SPDXID")?.unwrap_or_else(|| format!("#{i}")),
            name: p.opt_string("name")?.unwrap_or_default(),
            version: p.opt_string("versionInfo")?,
            supplier: p.opt_string("supplier")?.and_then(supplier),
            ..SbomComponent::default()
        };
        p.each("externalRefs", |_, r| {
            let kind = r.opt_string("referenceType")?.unwrap_or_default();
            let loc = r.req_string("referenceLocator")?;
            spdx_refs(&kind, loc, &mut c);
            Ok(())
        })?;
        Ok(c)
    })?;
    let mut dependencies = BTreeMap::new();
    let mut described = root.strings("documentDescribes")?;
    root.each("relationships", |_, r| {
        relationship(
            &mut dependencies,
            &mut described,
            r.req_string("spdxElementId")?,
            &r.req_string("relationshipType")?,
            r.req_string("relatedSpdxElement")?,
        );
        Ok(())
    })?;
    described.sort();
    described.dedup();
    let mut sbom = Sbom {
        format: SbomFormat::SpdxJson,
        spec_version: root.req_string("spdxVersion")?,
        subject: None,
        components,
        described,
        dependencies,
        vex: Vec::new(),
        warnings: Vec::new(),
    };
    check_graph(&mut sbom);
    Ok(sbom)
}

fn spdx_tag_value(bytes: &[u8]) -> Result<Sbom, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::Invalid {
        path: "line 1".into(),
        message: format!("not UTF-8: {e}"),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut spec_version = None;
    let mut components: Vec<SbomComponent> = Vec::new();
    let mut in_package = false;
    let mut dependencies = BTreeMap::new();
    let mut described = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((tag, value)) = line.split_once(':') else {
            return Err(ParseError::Invalid {
                path: format!("line {n}"),
                message: format!("expected \"Tag: value\", found {:?}", excerpt(line)),
            });
        };
        let mut value = value.trim().to_owned();
        if let Some(rest) = value.strip_prefix("<text>") {
            // A multi-line value runs to the closing tag.
            let mut v = rest.to_owned();
            while !v.contains("</text>") {
                match lines.next() {
                    Some((_, l)) => {
                        v.push('\n');
                        v.push_str(l);
                    }
                    None => {
                        return Err(ParseError::Invalid {
                            path: format!("line {n}"),
                            message: format!("<text> of {tag} is never closed"),
                        })
                    }
                }
            }
            value = v.split("</text>").next().unwrap_or_default().to_owned();
        }
        match tag.trim() {
            "SPDXVersion" => spec_version = Some(value),
            "PackageName" => {
                in_package = true;
                components.push(SbomComponent {
                    id: format!("#{}", components.len()),
                    name: value,
                    ..SbomComponent::default()
                });
            }
            "FileName" | "SnippetSPDXID" => in_package = false,
            "SPDXID" if in_package => {
                if let Some(c) = components.last_mut() {
                    c.id = value;
                }
            }
            "PackageVersion" if in_package => {
                if let Some(c) = components.last_mut() {
                    c.version = Some(value);
                }
            }
            "PackageSupplier" if in_package => {
                if let Some(c) = components.last_mut() {
                    c.supplier = supplier(value);
                }
            }
            "ExternalRef" if in_package => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if let (Some(c), [_, kind, loc, ..]) = (components.last_mut(), parts.as_slice()) {
                    spdx_refs(kind, (*loc).to_owned(), c);
                }
            }
            "Relationship" => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if let [a, ty, b, ..] = parts.as_slice() {
                    relationship(
                        &mut dependencies,
                        &mut described,
                        (*a).into(),
                        ty,
                        (*b).into(),
                    );
                }
            }
            _ => {}
        }
    }
    let spec_version = spec_version.ok_or_else(|| ParseError::Invalid {
        path: "line 1".into(),
        message: "no SPDXVersion tag: not an SPDX tag-value document".into(),
    })?;
    let mut sbom = Sbom {
        format: SbomFormat::SpdxTagValue,
        spec_version,
        subject: None,
        components,
        described,
        dependencies,
        vex: Vec::new(),
        warnings: Vec::new(),
    };
    check_graph(&mut sbom);
    Ok(sbom)
}

fn xml_error(line: u32, message: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        path: format!("line {line}"),
        message: message.into(),
    }
}

/// The text of the first child element called `name` (CDATA included).
fn xml_child_text(n: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .map(|c| {
            c.children()
                .filter_map(|t| t.text())
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .filter(|t| !t.is_empty())
}

fn xml_children<'a, 'input>(
    n: roxmltree::Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn cyclonedx_xml(bytes: &[u8]) -> Result<Sbom, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| xml_error(1, format!("not UTF-8: {e}")))?;
    // DTDs stay refused (roxmltree's default): no entity expansion.
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| xml_error(e.pos().row, format!("not well-formed XML: {e}")))?;
    let bom = doc.root_element();
    let ns = bom.tag_name().namespace().unwrap_or_default();
    let Some(spec_version) = ns.strip_prefix("http://cyclonedx.org/schema/bom/") else {
        return Err(xml_error(
            doc.text_pos_at(bom.range().start).row,
            format!(
                "expected a <bom> element in the CycloneDX namespace, found <{}> in {:?}",
                excerpt(bom.tag_name().name()),
                excerpt(ns)
            ),
        ));
    };
    if bom.tag_name().name() != "bom" {
        return Err(xml_error(1, "the root element is not <bom>"));
    }
    let component = |c: roxmltree::Node<'_, '_>, n: usize| SbomComponent {
        id: c
            .attribute("bom-ref")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("#{n}")),
        kind: c.attribute("type").unwrap_or_default().to_owned(),
        name: xml_child_text(c, "name").unwrap_or_default(),
        version: xml_child_text(c, "version"),
        supplier: xml_children(c, "supplier")
            .next()
            .and_then(|s| xml_child_text(s, "name")),
        purl: xml_child_text(c, "purl"),
        cpes: xml_child_text(c, "cpe").into_iter().collect(),
    };
    let mut components = Vec::new();
    let mut dependencies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Nested components: an explicit stack of (parent id, <components> node).
    let mut stack: Vec<(Option<String>, roxmltree::Node<'_, '_>)> =
        xml_children(bom, "components").map(|c| (None, c)).collect();
    stack.reverse();
    while let Some((parent, list)) = stack.pop() {
        let mut nested = Vec::new();
        for c in xml_children(list, "component") {
            let comp = component(c, components.len());
            if let Some(p) = &parent {
                dependencies
                    .entry(p.clone())
                    .or_default()
                    .push(comp.id.clone());
            }
            for inner in xml_children(c, "components") {
                nested.push((Some(comp.id.clone()), inner));
            }
            components.push(comp);
        }
        stack.extend(nested.into_iter().rev());
    }
    let subject = xml_children(bom, "metadata")
        .next()
        .and_then(|m| xml_children(m, "component").next())
        .map(|c| component(c, usize::MAX));
    for deps in xml_children(bom, "dependencies") {
        for d in xml_children(deps, "dependency") {
            let Some(r) = d.attribute("ref") else {
                return Err(xml_error(
                    doc.text_pos_at(d.range().start).row,
                    "<dependency> without a ref attribute",
                ));
            };
            let on = dependencies.entry(r.to_owned()).or_default();
            on.extend(
                xml_children(d, "dependency").filter_map(|x| x.attribute("ref").map(str::to_owned)),
            );
        }
    }
    let mut vex = Vec::new();
    for vs in xml_children(bom, "vulnerabilities") {
        for v in xml_children(vs, "vulnerability") {
            let analysis = xml_children(v, "analysis").next();
            vex.push(VexStatement {
                id: xml_child_text(v, "id").unwrap_or_default(),
                state: analysis.and_then(|a| xml_child_text(a, "state")),
                justification: analysis.and_then(|a| xml_child_text(a, "justification")),
                response: analysis
                    .into_iter()
                    .flat_map(|a| xml_children(a, "responses"))
                    .flat_map(|r| xml_children(r, "response"))
                    .filter_map(|r| r.text().map(|t| t.trim().to_owned()))
                    .collect(),
                detail: analysis.and_then(|a| xml_child_text(a, "detail")),
                affects: xml_children(v, "affects")
                    .flat_map(|a| xml_children(a, "target"))
                    .filter_map(|t| xml_child_text(t, "ref"))
                    .collect(),
            });
        }
    }
    let mut sbom = Sbom {
        format: SbomFormat::CycloneDxXml,
        spec_version: spec_version.to_owned(),
        subject,
        components,
        described: Vec::new(),
        dependencies,
        vex,
        warnings: Vec::new(),
    };
    check_graph(&mut sbom);
    Ok(sbom)
}

/// Warns about duplicate ids, dependencies on unknown ids and one cycle (if
/// any), without recursion.
fn check_graph(sbom: &mut Sbom) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, c) in sbom.components.iter().enumerate() {
        if index.insert(c.id.as_str(), i).is_some() {
            sbom.warnings.push(Warning {
                path: format!("component {}", excerpt(&c.id)),
                message: "the id is used by more than one component".into(),
            });
        }
    }
    let subject = sbom.subject.as_ref().map(|s| s.id.as_str());
    let known =
        |id: &str| index.contains_key(id) || Some(id) == subject || id == "SPDXRef-DOCUMENT";
    let mut unknown = 0usize;
    for (from, tos) in &sbom.dependencies {
        for id in std::iter::once(from).chain(tos) {
            if !known(id) {
                unknown += 1;
                if unknown <= 10 {
                    sbom.warnings.push(Warning {
                        path: format!("dependencies of {}", excerpt(from)),
                        message: format!("{} is not a component of this SBOM", excerpt(id)),
                    });
                }
            }
        }
    }
    if unknown > 10 {
        sbom.warnings.push(Warning {
            path: "dependencies".into(),
            message: format!("{} more references to unknown components", unknown - 10),
        });
    }
    if let Some(cycle) = find_cycle(&sbom.dependencies) {
        sbom.warnings.push(Warning {
            path: "dependencies".into(),
            message: format!(
                "dependency cycle: {}",
                cycle
                    .iter()
                    .take(6)
                    .map(|s| excerpt(s))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
        });
    }
}

/// One cycle of the graph, if any (iterative depth-first search).
pub fn find_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark: HashMap<&str, Mark> = HashMap::new();
    let empty = Vec::new();
    for start in graph.keys() {
        if mark.get(start.as_str()).copied().unwrap_or(Mark::New) != Mark::New {
            continue;
        }
        // Stack of (node, next child index); `path` mirrors the open nodes.
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        mark.insert(start, Mark::Open);
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let children = graph.get(node).unwrap_or(&empty);
            if let Some(child) = children.get(*next) {
                *next += 1;
                match mark.get(child.as_str()).copied().unwrap_or(Mark::New) {
                    Mark::New => {
                        mark.insert(child, Mark::Open);
                        stack.push((child.as_str(), 0));
                    }
                    Mark::Open => {
                        let from = stack
                            .iter()
                            .position(|(n, _)| *n == child.as_str())
                            .unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                        cycle.push(child.clone());
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/sbom/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn medical_device_cyclonedx() {
        let s = parse(&data("medical-device-casestudy-narrow.cdx.json")).unwrap();
        assert_eq!(s.format, SbomFormat::CycloneDx);
        assert_eq!(s.spec_version, "1.4");
        assert_eq!(s.components.len(), 55);
        assert_eq!(s.subject.as_ref().unwrap().kind, "device");
        let wolf = s
            .components
            .iter()
            .find(|c| c.purl.as_deref() == Some("pkg:github/wolfssl/wolfssl"))
            .unwrap();
        assert_eq!(wolf.version.as_deref(), Some("4.8.1"));
        let qca = &s.components[0];
        assert_eq!(
            qca.cpes,
            ["cpe:2.3:h:qualcomm:atheros_qca9563:*:*:*:*:*:*:*:*"]
        );
        assert_eq!(qca.version, None, "an empty version is no version");
        // Every purl and CPE in this real SBOM parses.
        for c in &s.components {
            if let Some(p) = &c.purl {
                crate::purl::Purl::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            }
            for cpe in &c.cpes {
                crate::cpe::Cpe::parse(cpe).unwrap_or_else(|e| panic!("{cpe}: {e}"));
            }
        }
    }

    #[test]
    fn vex_and_hbom() {
        let s = parse(&data("vex-cisa-use-case-1-affected.cdx.json")).unwrap();
        assert_eq!(s.vex.len(), 1);
        assert_eq!(s.vex[0].id, "CVE-2021-44228");
        assert_eq!(s.vex[0].state.as_deref(), Some("exploitable"));
        assert_eq!(s.vex[0].response, ["will_not_fix", "update"]);
        assert_eq!(s.vex[0].affects, ["product-DEF"]);
        let s = parse(&data("vex-cisa-use-case-2.cdx.json")).unwrap();
        assert!(s
            .vex
            .iter()
            .all(|v| v.state.as_deref() == Some("not_affected")));
        assert_eq!(
            s.vex[0].justification.as_deref(),
            Some("code_not_reachable")
        );
        let h = parse(&data("hbom-pcie-sata-adapter-board.cdx.json")).unwrap();
        assert_eq!(h.components[0].supplier.as_deref(), Some("Samtec"));
        assert!(h.warnings.is_empty(), "{:?}", h.warnings);
    }

    #[test]
    fn spdx_both_encodings() {
        let s = parse(&data("busybox-container.syft.spdx.json")).unwrap();
        assert_eq!(s.format, SbomFormat::SpdxJson);
        assert_eq!(s.components[0].name, "busybox");
        assert_eq!(
            s.components[0].cpes,
            ["cpe:2.3:a:busybox:busybox:1.32.1:*:*:*:*:*:*:*"]
        );
        let t = parse(&data("busybox-container.trivy.spdx.json")).unwrap();
        assert!(t.components[0]
            .purl
            .as_deref()
            .unwrap()
            .starts_with("pkg:oci/library-busybox@sha256:"));
        assert_eq!(t.described, ["SPDXRef-ContainerImage-885b4f37f5f6d3ca"]);
        let u = parse(&data("usbutils.spdx")).unwrap();
        assert_eq!(u.format, SbomFormat::SpdxTagValue);
        assert_eq!(u.spec_version, "SPDX-2.1");
        // usbutils' SBOM lists files, not packages.
        assert!(u.components.is_empty());
    }

    #[test]
    fn nested_components_are_contained_in_their_parent() {
        let doc = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
            {"bom-ref":"fw","type":"firmware","name":"fw","components":[
              {"bom-ref":"os","name":"os","components":[{"bom-ref":"libc","name":"libc"}]},
              {"bom-ref":"tls","name":"tls"}]}]}"#;
        let s = parse(doc).unwrap();
        let ids: Vec<&str> = s.components.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["fw", "os", "libc", "tls"]);
        assert_eq!(s.dependencies["fw"], ["os", "tls"]);
        assert_eq!(s.dependencies["os"], ["libc"]);
        assert!(s.warnings.is_empty());
        let bom = b"\xEF\xBB\xBFSPDXVersion: SPDX-2.3\nPackageName: x\nSPDXID: SPDXRef-x\nPackageVersion: 1.0\nExternalRef: PACKAGE-MANAGER purl pkg:generic/x@1.0\n";
        let t = parse(bom).unwrap();
        assert_eq!(t.components[0].purl.as_deref(), Some("pkg:generic/x@1.0"));
        assert_eq!(t.components[0].id, "SPDXRef-x");
    }

    #[test]
    fn cyclonedx_xml_excerpt() {
        let s = parse(&data("laravel-7.12.0-excerpt.cdx.xml")).unwrap();
        assert_eq!(s.format, SbomFormat::CycloneDxXml);
        assert_eq!(s.spec_version, "1.4");
        assert_eq!(
            s.subject.as_ref().unwrap().name,
            "cyclonedx-php-composer-demo"
        );
        assert_eq!(s.components.len(), 2);
        let c = &s.components[0];
        assert_eq!(c.id, "asm89/stack-cors-1.3.0.0");
        assert_eq!(c.kind, "library");
        assert_eq!(
            (c.name.as_str(), c.version.as_deref()),
            ("stack-cors", Some("1.3.0"))
        );
        assert_eq!(
            c.purl.as_deref(),
            Some("pkg:composer/asm89/stack-cors@1.3.0")
        );
        // The excerpt keeps dependencies on components it left out (ids in
        // messages are cut at 40 characters).
        let w: Vec<String> = s.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            [
                "dependencies of cyclonedx/cyclonedx-php-composer-demo-de…: laravel/laravel-7.12.0.0 is not a component of this SBOM",
                "dependencies of voku/portable-ascii-1.6.1.0: voku/portable-ascii-1.6.1.0 is not a component of this SBOM",
            ]
        );
    }

    #[test]
    fn cyclonedx_xml_nesting_vex_and_errors() {
        let doc = br#"<?xml version="1.0"?>
<bom xmlns="http://cyclonedx.org/schema/bom/1.5" version="1">
  <components>
    <component type="firmware" bom-ref="fw"><name>fw</name><version>22D28</version>
      <supplier><name>Baxter</name></supplier>
      <cpe>cpe:2.3:o:baxter:spectrum_wireless_battery_module_firmware:22d28:*:*:*:*:*:*:*</cpe>
      <components><component type="library" bom-ref="tls"><name>wolfssl</name><version>4.8.1</version></component></components>
    </component>
  </components>
  <vulnerabilities>
    <vulnerability bom-ref="v1"><id>CVE-2022-26390</id>
      <analysis><state>not_affected</state><justification>code_not_reachable</justification>
        <responses><response>will_not_fix</response></responses><detail>no</detail></analysis>
      <affects><target><ref>fw</ref></target></affects>
    </vulnerability>
  </vulnerabilities>
</bom>"#;
        let s = parse(doc).unwrap();
        assert_eq!(s.components.len(), 2);
        assert_eq!(s.components[0].supplier.as_deref(), Some("Baxter"));
        assert_eq!(s.components[0].cpes.len(), 1);
        assert_eq!(s.dependencies["fw"], ["tls"]);
        assert_eq!(s.vex[0].state.as_deref(), Some("not_affected"));
        assert_eq!(s.vex[0].response, ["will_not_fix"]);
        assert_eq!(s.vex[0].affects, ["fw"]);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let e =
            parse(b"<bom xmlns=\"http://cyclonedx.org/schema/bom/1.5\"><components>").unwrap_err();
        assert!(
            e.to_string().starts_with("line 1: not well-formed XML"),
            "{e}"
        );
        let e = parse(b"<html xmlns=\"http://www.w3.org/1999/xhtml\"/>").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a <bom> element in the CycloneDX namespace"),
            "{e}"
        );
        let e = parse(b"<!DOCTYPE bom [<!ENTITY a \"aaaa\">]><bom xmlns=\"http://cyclonedx.org/schema/bom/1.5\">&a;</bom>").unwrap_err();
        assert!(
            e.to_string().contains("not well-formed XML"),
            "DTDs are refused: {e}"
        );
        let e = parse(b"<bom xmlns=\"http://cyclonedx.org/schema/bom/1.5\">\n<dependencies>\n<dependency/></dependencies></bom>").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: <dependency> without a ref attribute"
        );
    }

    #[test]
    fn cycles_and_unknown_refs_are_warnings() {
        let doc = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
            {"bom-ref":"a","name":"a"},{"bom-ref":"b","name":"b"},{"bom-ref":"a","name":"dup"}],
            "dependencies":[{"ref":"a","dependsOn":["b"]},{"ref":"b","dependsOn":["a","ghost"]}]}"#;
        let s = parse(doc).unwrap();
        let w: Vec<String> = s.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(w[0].contains("more than one component"));
        assert!(w[1].ends_with("ghost is not a component of this SBOM"));
        assert_eq!(w[2], "dependencies: dependency cycle: a → b → a");
    }

    #[test]
    fn a_hundred_thousand_components_in_a_chain() {
        let n = 100_000;
        let comps: Vec<String> = (0..n).map(|i| format!(r#"{{"bom-ref":"c{i}","name":"lib{i}","version":"1.{i}","purl":"pkg:generic/lib{i}@1.{i}"}}"#)).collect();
        let deps: Vec<String> = (0..n - 1)
            .map(|i| format!(r#"{{"ref":"c{i}","dependsOn":["c{}"]}}"#, i + 1))
            .collect();
        let doc = format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{}],"dependencies":[{}]}}"#,
            comps.join(","),
            deps.join(",")
        );
        let s = parse(doc.as_bytes()).unwrap();
        assert_eq!(s.components.len(), n);
        assert!(s.warnings.is_empty());
        let mut g = s.dependencies.clone();
        g.entry(format!("c{}", n - 1))
            .or_default()
            .push("c0".into());
        assert_eq!(find_cycle(&g).map(|c| c.len()), Some(n + 1));
    }

    #[test]
    fn errors() {
        let e = parse(br#"{"bomFormat":"CycloneDX","components":[{"name":3}]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "$.components[0].name: expected a string, found number 3"
        );
        let e = parse(br#"{"hello":1}"#).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("$: expected a CycloneDX (bomFormat) or SPDX (spdxVersion) document"));
        let e = parse(b"SPDXVersion: SPDX-2.3\nPackageName: x\nnot a tag line\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: expected \"Tag: value\", found \"not a tag line\""
        );
        let e = parse(b"SPDXVersion: SPDX-2.3\nPackageComment: <text>never closed\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: <text> of PackageComment is never closed"
        );
        assert!(parse(b"PackageName: x\n").is_err());
    }
}
