//! Correlation reads: the implementation index's contract and the
//! correlator over it, on both stores.

use changehub_tests::{aws, correlate_contract as contract};

use super::store_contract::{contract_cases, embedded};

contract_cases!(
    implementations_are_read_by_when_they_ran,
    the_implementation_index_follows_the_record,
    the_correlator_reads_the_scope_and_ranks_what_it_finds,
);
