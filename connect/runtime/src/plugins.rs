//! The connector classes a worker can run, by Kafka Connect class name and alias.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_connect_api::{
    CustomTransform, CustomTransforms, SinkConnector, SourceConnector, TransformFactory,
};

/// A connector class.
#[derive(Clone)]
pub enum Plugin {
    /// A source connector.
    Source(Arc<dyn Fn() -> Box<dyn SourceConnector> + Send + Sync>),
    /// A sink connector.
    Sink(Arc<dyn Fn() -> Box<dyn SinkConnector> + Send + Sync>),
}

/// Connector classes by name.
#[derive(Clone, Default)]
pub struct Plugins {
    classes: BTreeMap<String, (Plugin, String)>,
    transforms: CustomTransforms,
}

impl Plugins {
    /// The connectors that come with Strom (the file source and sink).
    pub fn builtin() -> Plugins {
        let mut plugins = Plugins::default();
        plugins.add_source(
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            &["FileStreamSource", "FileStreamSourceConnector"],
            || Box::new(crate::file::FileStreamSource::default()),
        );
        plugins.add_sink(
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
            &["FileStreamSink", "FileStreamSinkConnector"],
            || Box::new(crate::file::FileStreamSink::default()),
        );
        plugins
    }

    /// Adds a source connector class under `class` and its `aliases`.
    pub fn add_source(
        &mut self,
        class: &str,
        aliases: &[&str],
        make: impl Fn() -> Box<dyn SourceConnector> + Send + Sync + 'static,
    ) {
        let plugin = Plugin::Source(Arc::new(make));
        self.add(class, aliases, plugin);
    }

    /// Adds a sink connector class under `class` and its `aliases`.
    pub fn add_sink(
        &mut self,
        class: &str,
        aliases: &[&str],
        make: impl Fn() -> Box<dyn SinkConnector> + Send + Sync + 'static,
    ) {
        let plugin = Plugin::Sink(Arc::new(make));
        self.add(class, aliases, plugin);
    }

    /// Adds a transform class under `class` and its `aliases`, built from its keys.
    pub fn add_transform(
        &mut self,
        class: &str,
        aliases: &[&str],
        make: impl Fn(
                &strom_connect_api::ConfigMap,
            ) -> Result<Box<dyn CustomTransform>, strom_connect_api::ConnectError>
            + Send
            + Sync
            + 'static,
    ) {
        let make: TransformFactory = Arc::new(make);
        for name in std::iter::once(&class).chain(aliases) {
            self.transforms.insert((*name).to_owned(), make.clone());
        }
    }

    /// The transform classes added with [`Plugins::add_transform`].
    pub fn transforms(&self) -> &CustomTransforms {
        &self.transforms
    }

    fn add(&mut self, class: &str, aliases: &[&str], plugin: Plugin) {
        for name in std::iter::once(&class).chain(aliases) {
            self.classes
                .insert((*name).to_owned(), (plugin.clone(), class.to_owned()));
        }
    }

    /// The class `name` (a class name or an alias), with its full class name.
    pub fn get(&self, name: &str) -> Option<(Plugin, &str)> {
        self.classes
            .get(name)
            .map(|(plugin, class)| (plugin.clone(), class.as_str()))
    }

    /// Every class: its full name and whether it is a source.
    pub fn classes(&self) -> Vec<(&str, bool)> {
        let mut classes: Vec<(&str, bool)> = self
            .classes
            .values()
            .map(|(plugin, class)| (class.as_str(), matches!(plugin, Plugin::Source(_))))
            .collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    }
}
