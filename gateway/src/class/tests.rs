//! Unit tests of class parsing: every flag's bounds and the messages that
//! name the fix.

use super::*;

fn parse(
    replicas: Option<u8>,
    ec: Option<&str>,
    labels: Option<&str>,
    spread: Option<&str>,
) -> Result<ClassSpec, ClassError> {
    ClassSpec::parse("c1", replicas, ec, labels, spread, false, false)
}

fn err(r: Result<ClassSpec, ClassError>) -> String {
    r.expect_err("should be refused").to_string()
}

#[test]
fn defaults_are_two_replicas_host_loose() {
    let spec = ClassSpec::parse("default", None, None, None, None, false, false).unwrap();
    assert_eq!(spec, ClassSpec::default_class());
    assert_eq!(spec.describe(), "2 replicas (*), spread host, loose");
    assert_eq!(spec.copies(), 2);
    assert_eq!(spec.domains_needed(), 2);
}

#[test]
fn replicas_with_labels() {
    let spec = parse(Some(2), None, Some("hdd,*"), Some("zone")).unwrap();
    assert_eq!(
        spec.labels,
        vec![LabelRule::Label("hdd".into()), LabelRule::Any]
    );
    assert_eq!(spec.spread, Spread::Zone);
    assert_eq!(spec.describe(), "2 replicas (hdd,*), spread zone, loose");
    assert_eq!(spec.rule(0), &LabelRule::Label("hdd".into()));
    assert_eq!(spec.rule(1), &LabelRule::Any);

    let one = parse(Some(3), None, Some("ssd"), None).unwrap();
    assert_eq!(one.copies(), 3);
    assert!((0..3).all(|i| one.rule(i) == &LabelRule::Label("ssd".into())));

    let single = parse(Some(1), None, Some(" ssd , "), None);
    assert!(err(single).contains("rule 2"));
    assert_eq!(
        parse(Some(1), None, None, None).unwrap().describe(),
        "1 replica (*), spread host, loose"
    );
}

#[test]
fn erasure_coded() {
    let spec =
        ClassSpec::parse("backup", None, Some("4+1"), None, Some("host"), true, false).unwrap();
    assert_eq!(spec.layout, Layout::ErasureCoded { k: 4, m: 1 });
    assert_eq!(spec.copies(), 5);
    assert_eq!(spec.domains_needed(), 5);
    assert_eq!(spec.describe(), "ec 4+1 (*), spread host, strict");
    assert!(parse(None, Some("30+2"), None, None).is_ok());
    assert!(parse(None, Some("2+1"), Some("ssd,hdd,hdd"), None).is_ok());
}

#[test]
fn archive_transition_flags() {
    let base = parse(Some(2), None, Some("hdd"), Some("host")).unwrap();
    let spec = base
        .clone()
        .with_archive(Some("30d"), Some("4+1"), None, None)
        .unwrap();
    let archived = spec.archived().unwrap();
    assert_eq!(archived.layout, Layout::ErasureCoded { k: 4, m: 1 });
    assert_eq!(archived.labels, vec![LabelRule::Label("hdd".into())]);
    assert_eq!(archived.spread, Spread::Host);
    assert_eq!(archived.domains_needed(), 5);
    assert_eq!(
        spec.describe(),
        "2 replicas (hdd), spread host, loose; after 30d: ec 4+1 (hdd), spread host, loose"
    );
    // Stored and read back, the rule survives.
    assert_eq!(ClassSpec::from_json(&spec.to_json()).unwrap(), spec);
    let zone = base
        .clone()
        .with_archive(Some("10s"), Some("2+1"), Some("zone"), Some("ssd,hdd,*"))
        .unwrap()
        .archived()
        .unwrap();
    assert_eq!((zone.spread, zone.labels.len()), (Spread::Zone, 3));
    // No flags: no archive; a spec without one stays without one.
    assert_eq!(
        base.clone().with_archive(None, None, None, None).unwrap(),
        base
    );
    assert!(!base.to_json().contains("archive"));

    let e = err(base.clone().with_archive(Some("1d"), None, None, None));
    assert!(e.contains("--archive-after needs --archive-ec"), "{e}");
    let e = err(base.clone().with_archive(None, Some("4+1"), None, None));
    assert!(e.contains("--archive-ec needs --archive-after"), "{e}");
    let e = err(base.clone().with_archive(None, None, Some("zone"), None));
    assert!(e.contains("--archive-spread needs"), "{e}");
    let e = err(base
        .clone()
        .with_archive(Some("soon"), Some("4+1"), None, None));
    assert!(e.contains("--archive-after \"soon\""), "{e}");
    let e = err(base
        .clone()
        .with_archive(Some("1d"), Some("4+0"), None, None));
    assert!(e.contains("--ec 4+0"), "{e}");
    let e = err(base.with_archive(Some("1d"), Some("2+1"), None, Some("a,b")));
    assert!(e.contains("3 shards"), "{e}");
    let ec = parse(None, Some("4+1"), None, None).unwrap();
    let e = err(ec.with_archive(Some("1d"), Some("8+2"), None, None));
    assert!(e.contains("already erasure-coded"), "{e}");
}

#[test]
fn bad_input_names_flag_value_and_fix() {
    let e = err(parse(Some(9), None, None, None));
    assert!(e.contains("--replicas 9") && e.contains("1..8"), "{e}");
    let e = err(parse(Some(0), None, None, None));
    assert!(e.contains("--replicas 0"), "{e}");
    let e = err(parse(Some(2), Some("4+1"), None, None));
    assert!(e.contains("--replicas 2") && e.contains("--ec 4+1") && e.contains("only one"));
    let e = err(parse(None, Some("4-1"), None, None));
    assert!(e.contains("--ec \"4-1\"") && e.contains("K+M"), "{e}");
    for bad in ["1+1", "4+0", "30+3", "300+1"] {
        let e = err(parse(None, Some(bad), None, None));
        assert!(
            e.contains(&format!("--ec {bad}")) && e.contains("K+M <= 32"),
            "{e}"
        );
    }
    let e = err(parse(Some(3), None, Some("ssd,hdd"), None));
    assert!(
        e.contains("--labels \"ssd,hdd\"") && e.contains("2 rules") && e.contains("3 copies"),
        "{e}"
    );
    let e = err(parse(None, Some("4+2"), Some("a,b"), None));
    assert!(e.contains("6 shards"), "{e}");
    let e = err(parse(Some(2), None, Some("hdd,"), None));
    assert!(e.contains("rule 2") && e.contains("'*'"), "{e}");
    let e = err(parse(Some(2), None, Some("h d"), None));
    assert!(e.contains("\"h d\""), "{e}");
    let e = err(parse(Some(2), None, None, Some("rack")));
    assert!(
        e.contains("--spread \"rack\"") && e.contains("--spread zone"),
        "{e}"
    );
    let e = err(ClassSpec::parse("c", None, None, None, None, true, true));
    assert!(e.contains("--strict") && e.contains("--loose"), "{e}");
    for name in ["", "Big", "a/b", &"x".repeat(33)] {
        let e = err(ClassSpec::parse(name, None, None, None, None, false, false));
        assert!(e.contains("class name") && e.contains("a-z"), "{e}");
    }
}

#[test]
fn json_round_trip_and_validation() {
    for spec in [
        ClassSpec::default_class(),
        ClassSpec::parse(
            "fast",
            Some(3),
            None,
            Some("ssd,hdd,*"),
            Some("zone"),
            true,
            false,
        )
        .unwrap(),
        ClassSpec::parse(
            "ec",
            None,
            Some("8+3"),
            Some("hdd"),
            Some("store"),
            false,
            true,
        )
        .unwrap(),
    ] {
        let json = spec.to_json();
        assert_eq!(ClassSpec::from_json(&json).unwrap(), spec, "{json}");
    }
    let json = ClassSpec::default_class().to_json();
    assert_eq!(
        json,
        r#"{"name":"default","layout":{"replicas":{"n":2}},"labels":["*"],"spread":"host","strict":false}"#
    );
    let too_many = json.replace(r#""n":2"#, r#""n":9"#);
    assert!(matches!(
        ClassSpec::from_json(&too_many),
        Err(ClassError::ReplicasOutOfRange { value: 9 })
    ));
    let bad_count = json.replace(r#"["*"]"#, r#"["*","*","*"]"#);
    assert!(matches!(
        ClassSpec::from_json(&bad_count),
        Err(ClassError::LabelCount { .. })
    ));
    assert!(matches!(
        ClassSpec::from_json(r#"{"name":"x"}"#),
        Err(ClassError::Json { .. })
    ));
}
