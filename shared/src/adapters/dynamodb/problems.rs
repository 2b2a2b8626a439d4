//! The DynamoDB store's problems, recent-incident rings and incident counters.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use std::collections::{BTreeSet, HashMap};

use super::trails::{Forward, conditional_put};
use super::{
    DOC, DynamoStore, Item, classify, classify_transaction, condition_failed_at, decode, doc_of, key, n, put, s,
};
use crate::adapters::keys;
use crate::domain::problem::{Problem, ProblemId};
use crate::domain::{ServiceName, TenantId};
use crate::ports::{
    CounterKey, Counts, IncidentCounterKey, IncidentCounts, IncidentWrite, PROBLEMS_EVALUATED, Page, ProblemQuery,
    ProblemStore, RecurrenceState, StoreError,
};

fn text(item: &Item, name: &str) -> String {
    item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn number(item: &Item, name: &str) -> u64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl DynamoStore {
    /// Outcome counters and incident counter items in one BatchGetItem (per 100 keys).
    pub(super) async fn read_history(
        &self,
        outcomes: &[CounterKey],
        incidents: &[IncidentCounterKey],
    ) -> Result<(Vec<Counts>, Vec<IncidentCounts>), StoreError> {
        let outcome_keys: Vec<(String, String)> =
            outcomes.iter().map(|k| (keys::counter_pk(k), keys::counter_sk(k))).collect();
        let services: BTreeSet<(String, String)> =
            incidents.iter().map(|k| keys::incident_counter_key(&k.tenant, &k.service)).collect();
        let wanted: Vec<Item> =
            outcome_keys.iter().chain(&services).map(|(pk, sk)| key(pk.clone(), sk.clone())).collect();
        let found: HashMap<(String, String), Item> = self
            .batch_get_items(wanted, false)
            .await?
            .into_iter()
            .map(|item| ((text(&item, "PK"), text(&item, "SK")), item))
            .collect();
        let counts = outcome_keys
            .iter()
            .map(|k| {
                found.get(k).map_or_else(Counts::default, |item| Counts {
                    changes: number(item, "changes"),
                    failures: number(item, "failures"),
                })
            })
            .collect();
        let incident_counts = incidents
            .iter()
            .map(|k| {
                let item = found.get(&keys::incident_counter_key(&k.tenant, &k.service));
                let [incidents, change_related, problems] = keys::incident_attributes(&k.month);
                item.map_or_else(IncidentCounts::default, |item| IncidentCounts {
                    incidents: number(item, &incidents),
                    change_related: number(item, &change_related),
                    problems: number(item, &problems),
                })
            })
            .collect();
        Ok((counts, incident_counts))
    }

    fn problem_item(problem: &Problem) -> Result<Item, StoreError> {
        let mut item = key(keys::problems_pk(&problem.tenant), keys::problem_sk(&problem.id));
        item.insert("entity".into(), s("problem"));
        item.insert("version".into(), n(problem.version));
        item.insert("service".into(), s(problem.service.as_str()));
        item.insert("status".into(), s(problem.status.as_str()));
        item.insert(DOC.into(), doc_of(problem)?);
        Ok(item)
    }
}

impl ProblemStore for DynamoStore {
    async fn recurrence(
        &self,
        tenant: &TenantId,
        service: &ServiceName,
        incident_id: &str,
    ) -> Result<RecurrenceState, StoreError> {
        let counted = keys::counted_key(tenant, incident_id);
        let recent = keys::recent_key(tenant, service);
        let wanted = vec![key(counted.0.clone(), counted.1.clone()), key(recent.0.clone(), recent.1.clone())];
        let mut state = RecurrenceState::default();
        for item in self.batch_get_items(wanted, true).await? {
            let at = (text(&item, "PK"), text(&item, "SK"));
            if at == counted {
                state.counted = Some(decode(&item)?);
            } else if at == recent {
                state.recent = decode(&item)?;
            }
        }
        Ok(state)
    }

    /// One transaction: the incident's counted record, the ring, the
    /// counters and the problem, each conditional on what was read.
    async fn record_incident(&self, w: IncidentWrite<'_>) -> Result<(), StoreError> {
        let (cpk, csk) = keys::counted_key(w.tenant, w.incident_id);
        let mut counted = key(cpk, csk);
        counted.insert("entity".into(), s("incident_counted"));
        counted.insert("change_related".into(), boolean(w.counted.change_related));
        counted.insert(DOC.into(), doc_of(&w.counted)?);
        let counted = match w.counted_before {
            None => put(&self.table, counted, Some("attribute_not_exists(PK)"))?,
            Some(before) => {
                let mut write = put(&self.table, counted, Some("change_related = :before"))?;
                if let Some(p) = write.put.as_mut() {
                    p.expression_attribute_values =
                        Some(HashMap::from([(":before".to_owned(), boolean(before.change_related))]));
                }
                write
            }
        };
        let (rpk, rsk) = keys::recent_key(w.tenant, w.service);
        let mut recent = key(rpk, rsk);
        recent.insert("entity".into(), s("recent_incidents"));
        recent.insert("version".into(), n(w.recent.version));
        recent.insert(DOC.into(), doc_of(w.recent)?);
        let recent = conditional_put(&self.table, recent, "version", w.recent.version.saturating_sub(1))?;
        let (ipk, isk) = keys::incident_counter_key(w.tenant, w.service);
        let [incidents, change_related, problems] = keys::incident_attributes(w.month);
        let add = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(ipk, isk)))
            .update_expression("ADD #i :i, #c :c, #p :p SET entity = :entity")
            .expression_attribute_names("#i", incidents)
            .expression_attribute_names("#c", change_related)
            .expression_attribute_names("#p", problems)
            .expression_attribute_values(":i", n(w.add.incidents))
            .expression_attribute_values(":c", n(w.add.change_related))
            .expression_attribute_values(":p", n(w.add.problems))
            .expression_attribute_values(":entity", s("incident_counters"))
            .build()
            .map_err(|e| StoreError::backend(false, e))?;
        let mut writes = vec![counted, recent, TransactWriteItem::builder().update(add).build()];
        if let Some(problem) = w.problem {
            let item = Self::problem_item(problem)?;
            writes.push(conditional_put(&self.table, item, "version", problem.version.saturating_sub(1))?);
        }
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed_at(&e).is_some() => {
                Err(StoreError::VersionConflict { expected: w.recent.version })
            }
            Err(e) => Err(classify_transaction(e)),
        }
    }

    async fn get_problem(&self, tenant: &TenantId, id: &ProblemId) -> Result<Option<Problem>, StoreError> {
        self.read_item(keys::problems_pk(tenant), &keys::problem_sk(id)).await
    }

    async fn put_problem(&self, problem: &Problem) -> Result<(), StoreError> {
        let expected = problem.version.saturating_sub(1);
        let write = conditional_put(&self.table, Self::problem_item(problem)?, "version", expected)?;
        let stored = || async { Ok(self.get_problem(&problem.tenant, &problem.id).await?.is_some()) };
        self.put_conditionally(write, expected, stored).await
    }

    /// One Query of the tenant's problems, newest first, at most [`PROBLEMS_EVALUATED`] read.
    async fn list_problems(&self, q: &ProblemQuery) -> Result<Page<Problem>, StoreError> {
        let range = keys::problem_range(q.after.as_ref())?;
        let page = self.query_page(keys::problems_pk(&q.tenant), &range, Forward::No, PROBLEMS_EVALUATED).await?;
        let rows = page
            .items
            .iter()
            .map(|(sk, item)| Ok((sk.clone(), decode(item)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(keys::problem_page(rows, page.next.is_some(), q))
    }
}

impl DynamoStore {
    /// Sends one conditional put (from [`conditional_put`]) on its own. A
    /// failed condition is `VersionConflict` when an item is stored
    /// (`stored` says whether one is), else `NotFound`.
    pub(super) async fn put_conditionally<F, Fut>(
        &self,
        write: TransactWriteItem,
        expected: u64,
        stored: F,
    ) -> Result<(), StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        let Some(p) = write.put else { return Err(StoreError::backend(false, "a put without its item")) };
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(p.item))
            .set_condition_expression(p.condition_expression)
            .set_expression_attribute_names(p.expression_attribute_names)
            .set_expression_attribute_values(p.expression_attribute_values)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                if stored().await? { Err(StoreError::VersionConflict { expected }) } else { Err(StoreError::NotFound) }
            }
            Err(e) => Err(classify(e)),
        }
    }
}

fn boolean(v: bool) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::Bool(v)
}
