//! STUB (replaced by the policy work): signatures only.
#![allow(clippy::todo, dead_code, unused_variables)]
use std::sync::Arc;

use crate::barrier::BarrierView;
use crate::logical::{LogicalError, Operation};

#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub raw: String,
}
#[derive(Debug)]
pub struct Acl;
impl Acl {
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        todo!()
    }
    pub fn allows(&self, path: &str, op: Operation, needs_sudo: bool) -> bool {
        todo!()
    }
    pub fn is_root(&self) -> bool {
        todo!()
    }
}
#[derive(Debug)]
pub struct PolicyStore;
impl PolicyStore {
    pub async fn open(view: BarrierView) -> Result<Self, LogicalError> {
        todo!()
    }
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>, LogicalError> {
        todo!()
    }
    pub async fn set(&self, name: &str, text: &str) -> Result<(), LogicalError> {
        todo!()
    }
    pub async fn delete(&self, name: &str) -> Result<(), LogicalError> {
        todo!()
    }
    pub async fn list(&self) -> Result<Vec<String>, LogicalError> {
        todo!()
    }
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>, LogicalError> {
        todo!()
    }
}
