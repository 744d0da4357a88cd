//! The ledger (sổ chuỗi băm): digests over every hash chain.

use super::*;
use crate::commands::{DIGEST, example, example_command};

#[test]
fn a_viewer_may_not_record_a_digest_and_an_older_digest_is_refused() {
    let ex = example("record-digest");
    let command = example_command(
        COMMANDS
            .iter()
            .find(|s| s.name == "record-digest")
            .expect("listed"),
        &ex.body,
    );
    Spec::given(command.target(), &[])
        .with_facts(world())
        .as_actor(viewer())
        .when(command.clone())
        .then_forbidden();
    let history = Spec::given(command.target(), &[])
        .with_facts(world())
        .as_actor(auditor())
        .when(command)
        .history();
    let older = Command::RecordDigest(remediation_domain::ledger::RecordDigest {
        up_to_sequence: 100,
        chains: 30,
        events: 99,
        digest: DIGEST.to_owned(),
    });
    Spec::given(older.target(), &history)
        .with_facts(world())
        .as_actor(auditor())
        .when(older)
        .then_rejected(Rule::InvalidDigest);
}
