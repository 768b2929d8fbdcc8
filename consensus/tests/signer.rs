//! The double-sign guard and its WAL, across "restarts" (reopening the files).

use std::io::Write;
use tpslab_consensus::signer::{PrivValidator, SignError};
use tpslab_types::keys::account_key;
use tpslab_types::pb::VoteType;
use tpslab_types::vote::{verify_vote_signature, VoteData};
use tpslab_types::Hash;

fn open(dir: &std::path::Path) -> PrivValidator {
    PrivValidator::open(account_key("val", 0), "c".into(), &dir.join("cs.wal")).unwrap()
}

#[test]
fn never_signs_two_different_votes_for_one_step_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Hash([1; 32]), Hash([2; 32]));
    let first = {
        let mut pv = open(dir.path());
        let v = pv.sign_vote(VoteType::Prevote, 5, 0, Some(a), 111).unwrap();
        let again = pv.sign_vote(VoteType::Prevote, 5, 0, Some(a), 999).unwrap();
        assert_eq!(v, again, "re-signing the same vote returns the same bytes");
        assert!(matches!(
            pv.sign_vote(VoteType::Prevote, 5, 0, Some(b), 1),
            Err(SignError::DoubleSign { .. })
        ));
        assert!(matches!(
            pv.sign_vote(VoteType::Prevote, 5, 0, None, 1),
            Err(SignError::DoubleSign { .. })
        ));
        // Another step or round is fine.
        pv.sign_vote(VoteType::Precommit, 5, 0, None, 2).unwrap();
        pv.sign_vote(VoteType::Prevote, 5, 1, Some(b), 3).unwrap();
        v
    };
    let data = VoteData {
        chain_id: "c",
        vote_type: VoteType::Prevote,
        height: 5,
        round: 0,
        block_hash: Some(a),
        timestamp_unix_nanos: first.timestamp_unix_nanos,
    };
    verify_vote_signature(&data, &first.validator, &first.signature).unwrap();

    // Restart: the WAL restores the guard.
    let mut pv = open(dir.path());
    assert!(matches!(
        pv.sign_vote(VoteType::Prevote, 5, 0, Some(b), 4),
        Err(SignError::DoubleSign { .. })
    ));
    assert_eq!(
        pv.sign_vote(VoteType::Prevote, 5, 0, Some(a), 5).unwrap(),
        first
    );
    assert!(matches!(
        pv.sign_vote(VoteType::Precommit, 5, 0, Some(a), 6),
        Err(SignError::DoubleSign { .. })
    ));
}

#[test]
fn proposals_are_guarded_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut pv = open(dir.path());
    let (t, s) = pv.sign_proposal(3, 1, None, Hash([7; 32]), 10).unwrap();
    assert_eq!(
        pv.sign_proposal(3, 1, None, Hash([7; 32]), 20).unwrap(),
        (t, s)
    );
    assert!(pv.sign_proposal(3, 1, None, Hash([8; 32]), 30).is_err());
    assert!(pv.sign_proposal(3, 1, Some(0), Hash([7; 32]), 30).is_err());
}

#[test]
fn torn_tail_is_cut_and_intact_entries_kept() {
    let dir = tempfile::tempdir().unwrap();
    let a = Hash([1; 32]);
    {
        let mut pv = open(dir.path());
        pv.sign_vote(VoteType::Prevote, 1, 0, Some(a), 1).unwrap();
    }
    // A crash in the middle of the next append leaves half a record.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("cs.wal"))
        .unwrap();
    f.write_all(&[0, 0, 0, 90, 1, 2, 3, 4, 5, 6]).unwrap();
    drop(f);
    {
        let mut pv = open(dir.path());
        assert!(
            pv.sign_vote(VoteType::Prevote, 1, 0, None, 2).is_err(),
            "kept entry"
        );
        pv.sign_vote(VoteType::Precommit, 1, 0, Some(a), 3).unwrap();
    }
    let mut pv = open(dir.path());
    assert!(
        pv.sign_vote(VoteType::Precommit, 1, 0, None, 4).is_err(),
        "appended after the cut"
    );
}

#[test]
fn pruning_drops_old_heights_and_stale_heights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut pv = open(dir.path());
    for h in 1..=3 {
        pv.sign_vote(VoteType::Prevote, h, 0, None, h).unwrap();
    }
    pv.prune_below(3).unwrap();
    drop(pv);
    let mut pv = open(dir.path());
    assert!(matches!(
        pv.sign_vote(VoteType::Prevote, 2, 0, Some(Hash([9; 32])), 9),
        Err(SignError::Stale { height: 2, last: 3 })
    ));
    assert!(pv
        .sign_vote(VoteType::Prevote, 3, 0, Some(Hash([9; 32])), 9)
        .is_err());
    let wal_len = std::fs::metadata(dir.path().join("cs.wal")).unwrap().len();
    assert!(wal_len < 200, "pruned wal is small: {wal_len}");
}
