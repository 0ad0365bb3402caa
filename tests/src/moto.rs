//! The Python `moto` server (`moto[server]`, installed by `scripts/test`) as a stand-in AWS:
//! IAM users, roles and STS on one loopback port. moto answers GetCallerIdentity with the
//! ARN of the access key that signed the request; it does not check signatures.
//!
//! [`Moto::start`] runs `python3 -m moto.server` on a free port and waits for it; the
//! process is killed on drop. [`Moto::boto`] runs a boto3 snippet against it (that is how
//! the tests make users, keys and roles). [`sign_login`] signs a GetCallerIdentity request
//! with hush-agent's signer and returns the `auth/aws/login` body Vault's clients send.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

/// A running moto server, killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// AWS credentials for a test principal (moto's, worthless outside it).
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub arn: String,
}

impl Moto {
    /// Start moto on a free port and wait until it answers.
    pub fn start() -> Moto {
        let port = crate::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3 -m moto.server (pip install 'moto[server]')");
        let mut m = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("moto exited early with {status}: is moto[server] installed?");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The port is open before the app is loaded: wait for a real answer.
        while m
            .boto("out = sts.get_caller_identity()['Account']")
            .is_none()
        {
            assert!(Instant::now() < deadline, "moto does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    /// Run a boto3 snippet with clients `iam` and `sts` bound to this server; the snippet
    /// sets `out`, returned as JSON (None when the snippet failed).
    pub fn boto(&self, snippet: &str) -> Option<Value> {
        let script = format!(
            "import boto3, json\n\
             kw = dict(endpoint_url={url:?}, region_name='us-east-1',\n\
                       aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             iam = boto3.client('iam', **kw)\n\
             sts = boto3.client('sts', **kw)\n\
             {snippet}\n\
             print(json.dumps(out, default=str))\n",
            url = self.url
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .env_remove("AWS_PROFILE")
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// An IAM user with an access key.
    pub fn user(&self, name: &str) -> Keys {
        let v = self
            .boto(&format!(
                "u = iam.create_user(UserName={name:?})['User']\n\
                 k = iam.create_access_key(UserName={name:?})['AccessKey']\n\
                 out = [u['Arn'], k['AccessKeyId'], k['SecretAccessKey']]"
            ))
            .expect("create an IAM user in moto");
        Keys {
            arn: v[0].as_str().unwrap().into(),
            access_key: v[1].as_str().unwrap().into(),
            secret_key: v[2].as_str().unwrap().into(),
            session_token: None,
        }
    }

    /// An IAM role any principal may assume; returns its ARN.
    pub fn role(&self, name: &str) -> String {
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"]}]});
        let v = self
            .boto(&format!(
                "out = iam.create_role(RoleName={name:?}, AssumeRolePolicyDocument={trust:?})['Role']['Arn']",
                trust = trust.to_string()
            ))
            .expect("create an IAM role in moto");
        v.as_str().unwrap().into()
    }

    /// Temporary credentials of `role_arn` (session `session`).
    pub fn assume(&self, role_arn: &str, session: &str) -> Keys {
        let v = self
            .boto(&format!(
                "r = sts.assume_role(RoleArn={role_arn:?}, RoleSessionName={session:?})\n\
                 c = r['Credentials']\n\
                 out = [r['AssumedRoleUser']['Arn'], c['AccessKeyId'], c['SecretAccessKey'], c['SessionToken']]"
            ))
            .expect("assume a role in moto");
        Keys {
            arn: v[0].as_str().unwrap().into(),
            access_key: v[1].as_str().unwrap().into(),
            secret_key: v[2].as_str().unwrap().into(),
            session_token: Some(v[3].as_str().unwrap().into()),
        }
    }
}

/// The `auth/aws/login` body for a GetCallerIdentity request to `sts_url`, signed with
/// `keys` for `region` by hush-agent's signer (`aws-sigv4`), with the server-id header when
/// given. `role` is left out when empty.
pub fn sign_login(
    keys: &Keys,
    region: &str,
    sts_url: &str,
    server_id: Option<&str>,
    role: &str,
) -> Value {
    let creds = hush_agent::auth::aws_creds::AwsCredentials {
        access_key_id: keys.access_key.clone(),
        secret_access_key: keys.secret_key.clone().into(),
        session_token: keys.session_token.clone().map(Into::into),
        source: "test",
    };
    let body = hush_agent::auth::aws::signed_body(
        &creds,
        region,
        sts_url.trim_end_matches('/'),
        server_id,
        role,
        SystemTime::now(),
    )
    .expect("sign GetCallerIdentity");
    let mut login = serde_json::to_value(&body).unwrap();
    if role.is_empty() {
        login.as_object_mut().unwrap().remove("role");
    }
    login
}
