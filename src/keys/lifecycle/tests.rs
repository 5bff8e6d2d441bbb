use super::*;

const DAY: i64 = 86_400;

fn policy() -> LifecyclePolicy {
    LifecyclePolicy {
        publish_ahead_secs: 900,
        rotation_period_secs: 90 * DAY,
        verify_window_secs: 86_400 + 300,
    }
}

fn manual() -> LifecyclePolicy {
    LifecyclePolicy {
        rotation_period_secs: 0,
        ..policy()
    }
}

fn key(kid: &str, state: KeyState, now: i64) -> KeyRecord {
    KeyRecord::new(kid.into(), Algorithm::EdDSA, state, None, now)
}

/// Applies steps as the store would; creates get kids `new-0`, `new-1`...
fn apply(steps: Vec<Step>, records: &mut Vec<KeyRecord>, now: i64) {
    for step in &steps {
        match step {
            Step::Update { from, record } => {
                let stored = records.iter_mut().find(|r| r.kid == record.kid).unwrap();
                assert_eq!(stored.state, *from, "{step:?}");
                *stored = record.clone();
            }
            Step::Create { state, promote_at } => {
                let kid = format!("new-{}", records.len());
                records.push(KeyRecord::new(
                    kid,
                    Algorithm::EdDSA,
                    *state,
                    *promote_at,
                    now,
                ));
            }
        }
        let current = records
            .iter()
            .filter(|r| r.state == KeyState::Current)
            .count();
        let next = records.iter().filter(|r| r.state == KeyState::Next).count();
        assert!(current <= 1 && next <= 1, "{records:?}");
    }
}

fn state_of(records: &[KeyRecord], kid: &str) -> KeyState {
    records.iter().find(|r| r.kid == kid).unwrap().state
}

#[test]
fn an_empty_store_gets_a_current_key_and_then_nothing_is_due() {
    let mut records = Vec::new();
    let steps = due_steps(&records, &policy(), 1_000);
    assert_eq!(
        steps,
        [Step::Create {
            state: KeyState::Current,
            promote_at: None
        }]
    );
    assert_eq!(next_due(&records, &policy()), Some(i64::MIN), "due at once");
    apply(steps, &mut records, 1_000);
    assert!(due_steps(&records, &policy(), 1_000).is_empty());
    assert!(due_steps(&records, &manual(), 1_000 + 10 * 365 * DAY).is_empty());
    assert_eq!(next_due(&records, &manual()), None);
}

#[test]
fn a_rotation_publishes_then_promotes_after_the_publish_ahead_then_retires() {
    let p = policy();
    let mut records = vec![key("a", KeyState::Current, 0)];
    let t = 10_000;
    let steps = rotate(&records, &p, t).unwrap();
    apply(steps, &mut records, t);
    let next = records[1].clone();
    assert_eq!(next.state, KeyState::Next);
    assert_eq!(next.promote_at, Some(t + 900));
    assert_eq!(next_due(&records, &p), Some(t + 900));

    // Published but not signing until the publish-ahead has passed.
    assert!(due_steps(&records, &p, t + 899).is_empty());
    let steps = due_steps(&records, &p, t + 900);
    apply(steps, &mut records, t + 900);
    assert_eq!(state_of(&records, "a"), KeyState::Previous);
    assert_eq!(state_of(&records, &next.kid), KeyState::Current);
    let a = &records[0];
    assert_eq!(a.demoted_at, Some(t + 900));
    assert_eq!(a.retire_at, Some(t + 900 + p.verify_window_secs));
    assert_eq!(records[1].activated_at, Some(t + 900));

    // Previous until every token it signed has expired, then retired.
    let retire_at = t + 900 + p.verify_window_secs;
    assert_eq!(next_due(&records, &p), Some(retire_at));
    assert!(due_steps(&records, &p, retire_at - 1).is_empty());
    let steps = due_steps(&records, &p, retire_at);
    apply(steps, &mut records, retire_at);
    assert_eq!(state_of(&records, "a"), KeyState::Retired);
    assert_eq!(records[0].retired_at, Some(retire_at));
    assert!(due_steps(&records, &p, retire_at).is_empty());
}

#[test]
fn scheduled_rotation_publishes_ahead_and_promotes_on_the_day() {
    let p = policy();
    let mut records = vec![key("a", KeyState::Current, 0)];
    let rotation = 90 * DAY;
    assert_eq!(next_due(&records, &p), Some(rotation - 900));
    assert!(due_steps(&records, &p, rotation - 901).is_empty());
    let steps = due_steps(&records, &p, rotation - 900);
    assert_eq!(
        steps,
        [Step::Create {
            state: KeyState::Next,
            promote_at: Some(rotation)
        }]
    );
    apply(steps, &mut records, rotation - 900);
    assert!(due_steps(&records, &p, rotation - 1).is_empty());
    apply(due_steps(&records, &p, rotation), &mut records, rotation);
    assert_eq!(state_of(&records, "a"), KeyState::Previous);
    assert_eq!(state_of(&records, "new-1"), KeyState::Current);
    // The new key's own rotation counts from its promotion.
    assert_eq!(
        next_due(&records, &p),
        Some(rotation + p.verify_window_secs)
    );
    let timeline = KeyTimeline::of(&records, &p).unwrap();
    assert_eq!(timeline.current_since, rotation);
    assert_eq!(timeline.next_promotion_at, Some(2 * rotation));
}

#[test]
fn a_late_scheduled_rotation_still_publishes_ahead() {
    // The fleet was down on the day: the next key still waits the full
    // publish-ahead before it signs.
    let p = policy();
    let records = vec![key("a", KeyState::Current, 0)];
    let late = 100 * DAY;
    assert_eq!(
        due_steps(&records, &p, late),
        [Step::Create {
            state: KeyState::Next,
            promote_at: Some(late + 900)
        }]
    );
}

#[test]
fn a_next_key_with_nothing_signing_is_promoted_at_once() {
    let p = policy();
    let mut records = vec![KeyRecord::new(
        "n".into(),
        Algorithm::EdDSA,
        KeyState::Next,
        Some(5_000),
        0,
    )];
    apply(due_steps(&records, &p, 10), &mut records, 10);
    assert_eq!(state_of(&records, "n"), KeyState::Current);
}

#[test]
fn rotate_now_retires_the_current_key_at_once() {
    let p = policy();
    let mut records = vec![
        key("a", KeyState::Current, 0),
        KeyRecord::new("n".into(), Algorithm::EdDSA, KeyState::Next, Some(9_000), 0),
    ];
    apply(rotate_now(&records, 100), &mut records, 100);
    assert_eq!(state_of(&records, "a"), KeyState::Retired);
    assert_eq!(records[0].retired_at, Some(100));
    assert_eq!(state_of(&records, "new-2"), KeyState::Current);
    assert_eq!(
        state_of(&records, "n"),
        KeyState::Next,
        "a waiting key waits on"
    );
    // The waiting key still takes over at its time, making the new key previous.
    apply(due_steps(&records, &p, 9_000), &mut records, 9_000);
    assert_eq!(state_of(&records, "n"), KeyState::Current);
    assert_eq!(state_of(&records, "new-2"), KeyState::Previous);
}

#[test]
fn operators_get_one_next_key_at_a_time_and_cannot_retire_the_signer() {
    let p = policy();
    let mut records = vec![key("a", KeyState::Current, 0)];
    apply(rotate(&records, &p, 10).unwrap(), &mut records, 10);
    assert!(matches!(
        rotate(&records, &p, 11),
        Err(LifecycleError::NextPending {
            promote_at: 910,
            ..
        })
    ));
    assert!(matches!(
        import(&records, "x", Algorithm::EdDSA, &p, 11),
        Err(LifecycleError::NextPending { .. })
    ));
    assert_eq!(
        import(&records, "a", Algorithm::EdDSA, &p, 11),
        Err(LifecycleError::DuplicateKey("a".into()))
    );
    assert_eq!(
        retire(&records, "a", 12),
        Err(LifecycleError::RetiringCurrent("a".into()))
    );
    assert_eq!(
        retire(&records, "zz", 12),
        Err(LifecycleError::UnknownKey("zz".into()))
    );
    // Retiring the waiting key makes room for an imported one.
    apply(retire(&records, "new-1", 12).unwrap(), &mut records, 12);
    assert_eq!(
        retire(&records, "new-1", 13),
        Err(LifecycleError::AlreadyRetired("new-1".into()))
    );
    let imported = import(&records, "x", Algorithm::EdDSA, &p, 20).unwrap();
    assert_eq!(imported.state, KeyState::Next);
    assert_eq!(imported.promote_at, Some(920));
}

#[test]
fn a_file_key_is_adopted_once_as_current_or_else_as_previous() {
    let p = policy();
    let first = adopt(&[], "file", Algorithm::EdDSA, &p, 50).unwrap();
    assert_eq!(first.state, KeyState::Current);
    assert_eq!(first.activated_at, Some(50));
    let records = vec![first];
    assert_eq!(adopt(&records, "file", Algorithm::EdDSA, &p, 60), None);
    let other = adopt(&records, "other-file", Algorithm::EdDSA, &p, 60).unwrap();
    assert_eq!(other.state, KeyState::Previous);
    assert_eq!(other.retire_at, Some(60 + p.verify_window_secs));
}

#[test]
fn the_timeline_counts_states_and_names_the_next_promotion() {
    let p = manual();
    let records = vec![
        key("a", KeyState::Current, 7),
        key("r", KeyState::Retired, 0),
        key("r2", KeyState::Retired, 0),
    ];
    let timeline = KeyTimeline::of(&records, &p).unwrap();
    assert_eq!(timeline.current_since, 7);
    assert_eq!(timeline.next_promotion_at, None, "manual rotation only");
    assert_eq!(
        timeline.by_state,
        [
            (KeyState::Current, 1),
            (KeyState::Next, 0),
            (KeyState::Previous, 0),
            (KeyState::Retired, 2)
        ]
    );
    assert_eq!(KeyTimeline::of(&records[1..], &p), None);
    for state in KeyState::ALL {
        assert_eq!(KeyState::from_name(state.name()), Some(state));
    }
}
