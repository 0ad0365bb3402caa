//! STUB (replaced by the KV work): signatures only.
#![allow(clippy::todo, dead_code, unused_variables)]
use crate::barrier::BarrierView;
use crate::logical::{LogicalBackend, LogicalError, Request, Response};

#[derive(Debug)]
pub struct KvBackend;
impl KvBackend {
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        todo!()
    }
}
#[async_trait::async_trait]
impl LogicalBackend for KvBackend {
    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        todo!()
    }
}
