use super::*;
use proptest::prelude::*;

const P: PartitionKey = (1, 0);
const Q: PartitionKey = (0, 3);

#[test]
fn lowest_held_record_wins_then_next_offset() {
    let mut l = AckLedger::new();
    l.assign(P);
    assert_eq!(l.committable(P), None);
    let acks: Vec<Ack> = (0..5).map(|o| l.take(P, o)).collect();
    let [a0, a1, a2, a3, a4] = <[Ack; 5]>::try_from(acks).unwrap();
    a0.complete(&mut l);
    let a1_copy = a1.clone();
    drop(a2);
    drop(a4);
    l.drain();
    assert_eq!(l.committable(P), Some(1));
    drop(a1);
    l.drain();
    assert_eq!(l.committable(P), Some(1), "one clone of the record left");
    a1_copy.complete(&mut l);
    l.drain();
    assert_eq!(l.committable(P), Some(3));
    drop(a3);
    l.drain();
    assert_eq!(l.committable(P), Some(5));
    assert_eq!(l.due(), vec![(P, 5, 5)]);
    l.committed(P, 5, 5);
    assert!(l.due().is_empty());
    assert_eq!(l.holding(), 0);
    assert_eq!(l.published().get(P), Some((5, 5)));
}

#[test]
fn gaps_in_offsets_do_not_hold() {
    let mut l = AckLedger::new();
    let a = l.take(P, 10);
    let b = l.take(P, 20);
    drop(a);
    l.drain();
    assert_eq!(l.committable(P), Some(20));
    drop(b);
    l.drain();
    assert_eq!(l.committable(P), Some(21));
}

#[test]
fn tokens_of_an_earlier_ownership_release_nothing() {
    let mut l = AckLedger::new();
    l.assign(P);
    let old = l.take(P, 7);
    l.revoke(P);
    l.assign(P);
    let new = l.take(P, 7);
    drop(old);
    l.drain();
    assert_eq!(l.committable(P), Some(7), "the new ownership still holds 7");
    drop(new);
    l.drain();
    assert_eq!(l.committable(P), Some(8));
}

#[test]
fn detached_tokens_hold_nothing() {
    let mut l = AckLedger::new();
    let d = Ack::detached();
    assert!(!d.same_record(&Ack::detached()));
    d.complete(&mut l);
    assert_eq!(l.holding(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    /// A record arrives on partition `p`, `gap` offsets after the last one.
    Consume { p: bool, gap: u8 },
    /// Something downstream takes another clone of a live token (a sink, a trace of the join).
    Clone(usize),
    /// A clone is dropped (a delivery acknowledged, a trace expired).
    Drop(usize),
    /// A clone is completed by the worker itself.
    Complete(usize),
    /// A delivery failed and is retried: its token stays alive, moved to another owner.
    Fail(usize),
    /// The partition moves away and (maybe) back.
    Revoke { p: bool, reassign: bool },
    /// The worker drains releases and commits what it may.
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0u8..3).prop_map(|(p, gap)| Op::Consume { p, gap }),
        2 => any::<usize>().prop_map(Op::Clone),
        4 => any::<usize>().prop_map(Op::Drop),
        2 => any::<usize>().prop_map(Op::Complete),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(p, reassign)| Op::Revoke { p, reassign }),
        3 => Just(Op::Commit),
    ]
}

struct Live {
    key: PartitionKey,
    offset: i64,
    epoch: u64,
    ack: Ack,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random interleavings of records, clones, acks, failures and revocations: no commit passes
    /// a record of the current ownership that still has a live token, and once every token is
    /// gone each owned partition's committable offset reaches one past its last record (no
    /// stall).
    #[test]
    fn never_commits_past_a_live_token_and_never_stalls(ops in proptest::collection::vec(op(), 1..200)) {
        let mut l = AckLedger::new();
        let mut live: Vec<Live> = Vec::new();
        let mut next = HashMap::from([(P, 0i64), (Q, 0i64)]);
        let mut epoch = HashMap::from([(P, 0u64), (Q, 0u64)]);
        let mut owned = HashMap::from([(P, true), (Q, true)]);
        let mut seen_this_epoch: HashMap<PartitionKey, bool> = HashMap::new();
        l.assign(P);
        l.assign(Q);
        for op in ops {
            match op {
                Op::Consume { p, gap } => {
                    let key = if p { P } else { Q };
                    if !owned[&key] { continue; }
                    let o = next[&key] + i64::from(gap);
                    next.insert(key, o + 1);
                    seen_this_epoch.insert(key, true);
                    live.push(Live { key, offset: o, epoch: epoch[&key], ack: l.take(key, o) });
                }
                Op::Clone(i) if !live.is_empty() => {
                    let i = i % live.len();
                    let c = Live { key: live[i].key, offset: live[i].offset, epoch: live[i].epoch, ack: live[i].ack.clone() };
                    live.push(c);
                }
                Op::Drop(i) if !live.is_empty() => { live.swap_remove(i % live.len()); }
                Op::Complete(i) if !live.is_empty() => {
                    let t = live.swap_remove(i % live.len());
                    t.ack.complete(&mut l);
                }
                Op::Fail(i) if !live.is_empty() => {
                    // The retry owns the token now; it stays alive at the end of the list.
                    let i = i % live.len();
                    let t = live.remove(i);
                    live.push(t);
                }
                Op::Revoke { p, reassign } => {
                    let key = if p { P } else { Q };
                    l.revoke(key);
                    *epoch.get_mut(&key).unwrap() += 1;
                    owned.insert(key, reassign);
                    seen_this_epoch.insert(key, false);
                    if reassign { l.assign(key); }
                }
                Op::Commit => {
                    l.drain();
                    for (key, c, seen) in l.due() {
                        prop_assert!(seen >= c, "seen mark {seen} behind committable {c}");
                        for t in &live {
                            prop_assert!(
                                !(t.key == key && t.epoch == epoch[&key] && t.offset < c),
                                "committable {c} passes live record {} of {:?}", t.offset, key
                            );
                        }
                        l.committed(key, c, seen);
                    }
                }
                _ => {}
            }
        }
        live.clear();
        l.drain();
        prop_assert_eq!(l.holding(), 0);
        for key in [P, Q] {
            if owned[&key] && seen_this_epoch.get(&key).copied().unwrap_or(false) && next[&key] > 0 {
                prop_assert_eq!(l.committable(key), Some(next[&key]));
            }
        }
    }
}

#[test]
fn a_held_record_keeps_the_commit_back_but_not_the_seen_mark() {
    let mut l = AckLedger::new();
    l.assign(P);
    let held = l.take(P, 10);
    let _ = l.take(P, 11);
    let _ = l.take(P, 12);
    l.drain();
    // The spans of 10 are still held by the join: the commit stays at 10, but 10 to 12 were
    // counted, and the next owner must know.
    assert_eq!(l.due(), vec![(P, 10, 13)]);
    l.committed(P, 10, 13);
    assert!(l.due().is_empty(), "nothing new to say");
    let _ = l.take(P, 13);
    l.drain();
    assert_eq!(l.due(), vec![(P, 10, 14)], "the mark moved alone");
    drop(held);
    l.drain();
    assert_eq!(l.due(), vec![(P, 14, 14)]);
}

#[test]
fn seen_metadata_round_trips_and_ignores_foreign_metadata() {
    assert_eq!(parse_seen_metadata(&seen_metadata(4711)), Some(4711));
    assert_eq!(parse_seen_metadata(""), None);
    assert_eq!(parse_seen_metadata("written by another tool"), None);
    assert_eq!(parse_seen_metadata("tracejoin.seen=x"), None);
}

#[test]
fn a_partition_held_at_its_first_record_still_commits_its_seen_mark() {
    let mut l = AckLedger::new();
    l.assign(P);
    let _held = l.take(P, 0);
    let _ = l.take(P, 1);
    l.drain();
    assert_eq!(l.committable(P), Some(0));
    assert_eq!(l.due(), vec![(P, 0, 2)]);
}

#[test]
fn a_gated_partition_commits_only_what_was_allowed() {
    let mut l = AckLedger::new();
    let key = (0, 3);
    l.assign(key);
    l.gate(key);
    for offset in 0..10 {
        l.take(key, offset).complete(&mut l);
    }
    l.drain();
    assert_eq!(
        l.committable(key),
        None,
        "closed until a state covers something"
    );
    assert!(l.due().is_empty());
    l.allow(key, 4);
    assert_eq!(l.committable(key), Some(4));
    l.allow(key, 2);
    assert_eq!(
        l.committable(key),
        Some(4),
        "an older state does not take it back"
    );
    l.allow(key, 40);
    assert_eq!(
        l.committable(key),
        Some(10),
        "never past what the ledger allows"
    );
    assert_eq!(l.seen(key), Some(10));
    let other = (0, 4);
    l.allow(other, 1);
    l.take(other, 0).complete(&mut l);
    assert_eq!(
        l.committable(other),
        Some(1),
        "an ungated partition is not limited"
    );
}
