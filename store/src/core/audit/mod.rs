//! STUB (replaced by the audit work): signatures only.
#![allow(clippy::todo, dead_code, unused_variables)]
use std::collections::BTreeMap;

use crate::barrier::BarrierView;
use crate::logical::{LogicalError, Request, Response};

#[derive(Debug)]
pub struct AuditBroker;
impl AuditBroker {
    pub async fn open(view: BarrierView) -> Result<Self, LogicalError> {
        todo!()
    }
    pub async fn enable(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: BTreeMap<String, String>,
    ) -> Result<(), LogicalError> {
        todo!()
    }
    pub async fn disable(&self, path: &str) -> Result<(), LogicalError> {
        todo!()
    }
    pub fn list(&self) -> serde_json::Value {
        todo!()
    }
    pub fn is_enabled(&self) -> bool {
        todo!()
    }
    pub async fn hash(&self, path: &str, input: &str) -> Result<String, LogicalError> {
        todo!()
    }
    pub async fn log_request(&self, req: &Request) -> Result<(), LogicalError> {
        todo!()
    }
    pub async fn log_response(
        &self,
        req: &Request,
        resp: Result<&Response, &LogicalError>,
    ) -> Result<(), LogicalError> {
        todo!()
    }
}
