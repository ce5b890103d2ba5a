//! A real ClickHouse (Debian's `clickhouse-server`, 18.16) on free loopback ports with a temp
//! data directory, queried over its HTTP interface; stopped on drop. `stop` and `start` keep the
//! data, for outage tests.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use super::{free_port, http, wait_http_ok};

pub struct ClickHouse {
    child: Option<Child>,
    pub addr: SocketAddr,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl ClickHouse {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let root = dir.path().display();
        let config = format!(
            "<yandex>\n<http_port>{}</http_port>\n<tcp_port>{}</tcp_port>\n\
             <listen_host>127.0.0.1</listen_host>\n<path>{root}/data/</path>\n\
             <tmp_path>{root}/tmp/</tmp_path>\n\
             <users_config>/etc/clickhouse-server/users.xml</users_config>\n\
             <default_profile>default</default_profile>\n\
             <default_database>default</default_database>\n\
             <mark_cache_size>5368709</mark_cache_size>\n\
             <logger><console>1</console><level>warning</level></logger>\n</yandex>\n",
            addr.port(),
            free_port(),
        );
        let config_path = dir.path().join("config.xml");
        std::fs::write(&config_path, config).expect("write config.xml");
        let mut ch = Self {
            child: None,
            addr,
            config: config_path,
            dir,
        };
        ch.resume().await;
        ch
    }

    /// Starts the server again on the same port and data.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", self.config.display()))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("clickhouse.log"))
                    .expect("log"),
            )
            .spawn()
            .expect("spawn clickhouse-server (apt-get install clickhouse-server)");
        self.child = Some(child);
        wait_http_ok(
            "ClickHouse to answer",
            &format!("http://{}/?query=SELECT%201", self.addr),
        )
        .await;
    }

    /// Kills the server; its data stays for [`Self::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `sql`; returns the answer's text or the error.
    pub async fn query(&self, sql: &str) -> Result<String, String> {
        let r = http()
            .post(self.url())
            .body(sql.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let text = r.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("{status}: {text}"))
        }
    }

    /// The rows of a `SELECT … FORMAT JSONEachRow`.
    pub async fn rows(&self, sql: &str) -> Result<Vec<serde_json::Value>, String> {
        let text = self.query(sql).await?;
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}")))
            .collect()
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}
