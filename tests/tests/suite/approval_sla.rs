//! Mean time to approve (issue 11 point 4): the approval-wait counters on both stores.

use changehub_tests::{approval_sla_contract as contract, aws};

use super::store_contract::{contract_cases, embedded};

contract_cases!(decisions_and_escalations_fill_the_wait_counters, concurrent_decisions_are_counted_once_each);
