#include "gui/plan_view.hpp"

#include "core/error.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"
#include "core/profile.hpp"
#include "gui/cluster_groups_field.hpp"
#include "gui/models/plan_switches.hpp"
#include "gui/models/search_job.hpp"

#include <QCheckBox>
#include <QComboBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

namespace loom::gui {
namespace {

const QString kCustomModel = QStringLiteral("custom");
const QString kBrowseProfile = QStringLiteral("Profile file…");

QString q(std::string_view text) { return QString::fromUtf8(text.data(), qsizetype(text.size())); }

const core::ModelPreset* known_preset(const QString& name) {
  for (const core::ModelPreset& preset : core::model_presets())
    if (q(preset.name) == name) return &preset;
  return nullptr;
}

QLabel* problem_label() {
  auto* label = new QLabel;
  label->setStyleSheet("color: #b00020;");
  label->setWordWrap(true);
  label->hide();
  return label;
}

}  // namespace

PlanView::PlanView(QWidget* parent) : QWidget(parent), job_(new SearchJob(this)) {
  buildForm();
  connect(job_, &SearchJob::progressChanged, this, [this](double fraction) { progress_->setValue(int(fraction * 1000)); });
  connect(job_, &SearchJob::finished, this, [this](std::shared_ptr<const plan::SearchResult> result) {
    progress_->setValue(1000);
    search_button_->setEnabled(canSearch());
    cancel_button_->setEnabled(false);
    const plan::SearchStats& s = result->stats;
    status_->setText(tr("%1 combinations, %2 valid, %3 fit; %4 simulated in %5 s")
                         .arg(QLocale(QLocale::English).toString(qlonglong(s.combinations)))
                         .arg(QLocale(QLocale::English).toString(qlonglong(s.valid)))
                         .arg(QLocale(QLocale::English).toString(qlonglong(s.fitting)))
                         .arg(QLocale(QLocale::English).toString(qlonglong(s.simulated)))
                         .arg(s.elapsed_s, 0, 'f', 2));
    emit searchFinished(result, running_request_);
  });
  connect(job_, &SearchJob::failed, this, [this](const QString& message) {
    search_button_->setEnabled(canSearch());
    cancel_button_->setEnabled(false);
    status_->setText(tr("Search failed: %1").arg(message));
    emit searchFailed(message);
  });
  connect(job_, &SearchJob::cancelled, this, [this] {
    search_button_->setEnabled(canSearch());
    cancel_button_->setEnabled(false);
    progress_->setValue(0);
    status_->setText(tr("Search cancelled"));
  });
  restoreSettings();
  check();
}

PlanView::~PlanView() { saveSettings(); }

QSpinBox* PlanView::addNumberField(QFormLayout* form, const QString& key, const QString& label, int minimum, int maximum) {
  auto* box = new QSpinBox;
  box->setRange(minimum, maximum);
  box->setGroupSeparatorShown(true);
  box->setToolTip(tr("Megatron-LM: --%1").arg(key));
  auto* problem = problem_label();
  auto* cell = new QWidget;
  auto* column = new QVBoxLayout(cell);
  column->setContentsMargins(0, 0, 0, 0);
  column->addWidget(box);
  column->addWidget(problem);
  form->addRow(label, cell);
  numbers_[key] = box;
  problems_[key] = problem;
  connect(box, &QSpinBox::valueChanged, this, [this] {
    if (filling_) return;
    preset_name_.clear();  // the fields no longer are the preset's
    preset_source_->setText(tr("Edited: your own architecture"));
    filling_ = true;
    preset_->setCurrentText(kCustomModel);
    filling_ = false;
    check();
  });
  return box;
}

void PlanView::buildForm() {
  auto* model_box = new QGroupBox(tr("Model"));
  auto* model_form = new QFormLayout(model_box);
  preset_ = new QComboBox;
  for (const core::ModelPreset& preset : core::model_presets()) preset_->addItem(q(preset.name));
  preset_->addItem(kCustomModel);
  preset_->setToolTip(tr("A published architecture; edit any field below to make your own"));
  model_form->addRow(tr("Preset"), preset_);
  preset_source_ = new QLabel;
  preset_source_->setWordWrap(true);
  preset_source_->setStyleSheet("color: palette(mid);");
  model_form->addRow(QString(), preset_source_);
  connect(preset_, &QComboBox::currentTextChanged, this, [this](const QString& name) {
    if (filling_ || name == kCustomModel) return;
    selectPreset(name);
  });
  addNumberField(model_form, "num-layers", tr("Layers"), 1, 100000);
  addNumberField(model_form, "hidden-size", tr("Hidden size"), 1, 1 << 20);
  addNumberField(model_form, "num-attention-heads", tr("Attention heads"), 1, 100000);
  addNumberField(model_form, "num-query-groups", tr("Key/value heads"), 1, 100000);
  addNumberField(model_form, "ffn-hidden-size", tr("FFN hidden size"), 1, 1 << 22);
  addNumberField(model_form, "vocab-size", tr("Vocabulary"), 1, 1 << 24);
  addNumberField(model_form, "seq-length", tr("Sequence length, tokens"), 1, 1 << 22);
  untied_ = new QCheckBox(tr("Separate output weights (untied embeddings)"));
  model_form->addRow(QString(), untied_);
  connect(untied_, &QCheckBox::toggled, this, [this] {
    if (!filling_) check();
  });
  summary_ = new QLabel;
  model_form->addRow(QString(), summary_);

  auto* cluster_box = new QGroupBox(tr("Cluster"));
  auto* cluster_form = new QFormLayout(cluster_box);
  addNumberField(cluster_form, "nodes", tr("Nodes"), 1, 1 << 20);
  addNumberField(cluster_form, "devices-per-node", tr("Devices per node"), 1, 1024);
  profile_ = new QComboBox;
  profile_->setEditable(true);
  for (const core::Profile& profile : core::builtin_profiles()) profile_->addItem(QString::fromStdString(profile.name));
  profile_->addItem(kBrowseProfile);
  profile_->setToolTip(tr("A built-in profile, or a profile JSON file measured by `loom profile`"));
  auto* profile_cell = new QWidget;
  auto* profile_column = new QVBoxLayout(profile_cell);
  profile_column->setContentsMargins(0, 0, 0, 0);
  profile_column->addWidget(profile_);
  problems_["profile"] = problem_label();
  profile_column->addWidget(problems_["profile"]);
  cluster_form->addRow(tr("Profile"), profile_cell);
  profile_summary_ = new QLabel;
  profile_summary_->setWordWrap(true);
  cluster_form->addRow(QString(), profile_summary_);
  connect(profile_, &QComboBox::currentTextChanged, this, [this](const QString& text) {
    if (filling_) return;
    if (text == kBrowseProfile) {
      const QString file = QFileDialog::getOpenFileName(this, tr("Profile"), QString(), tr("Profiles (*.json)"));
      filling_ = true;
      profile_->setCurrentText(file.isEmpty() ? profile_->itemText(0) : file);
      filling_ = false;
    }
    check();
  });

  groups_ = new ClusterGroupsField;
  problems_["cluster-groups"] = groups_->problemLabel();
  cluster_form->addRow(tr("Mixed cluster"), groups_);
  connect(groups_, &ClusterGroupsField::changed, this, [this] {
    if (!filling_) check();
  });

  auto* training_box = new QGroupBox(tr("Training"));
  auto* training_form = new QFormLayout(training_box);
  addNumberField(training_form, "global-batch-size", tr("Global batch, sequences"), 1, 1 << 24);
  dtype_ = new QComboBox;
  for (core::DType dtype : {core::DType::bf16, core::DType::fp16, core::DType::fp32}) dtype_->addItem(q(core::to_string(dtype)));
  training_form->addRow(tr("Data type"), dtype_);
  attention_ = new QComboBox;
  attention_->setObjectName(QStringLiteral("attention-backend"));
  for (core::AttentionBackend backend : {core::AttentionBackend::flash, core::AttentionBackend::unfused})
    attention_->addItem(attention_backend_text(backend));
  attention_->setToolTip(
      tr("Megatron-LM: --attention-backend, kept in every plan searched. flash: one fused, tiled kernel "
         "(current Megatron-Core); unfused: the attention scores are written out (Megatron-LM of 2021)"));
  training_form->addRow(tr("Attention"), attention_);
  uneven_splits_ = new QCheckBox(tr("Also uneven layer splits"));
  uneven_splits_->setObjectName(QStringLiteral("uneven-layer-splits"));
  uneven_splits_->setChecked(true);
  uneven_splits_->setToolTip(
      tr("Search splits of the layers that give the first stage (embedding), the last (output layer and loss) or "
         "a faster device group more or fewer layers than the others, beside the even split "
         "(loom plan --even-splits-only turns this off)"));
  training_form->addRow(tr("Pipeline"), uneven_splits_);
  objective_ = new QComboBox;
  for (plan::Objective objective : {plan::Objective::step_time, plan::Objective::tokens_per_s, plan::Objective::memory})
    objective_->addItem(q(plan::to_string(objective)));
  objective_->setToolTip(tr("What the ranking puts first"));
  training_form->addRow(tr("Rank by"), objective_);
  connect(dtype_, &QComboBox::currentTextChanged, this, [this] {
    if (!filling_) check();
  });

  search_button_ = new QPushButton(tr("Search"));
  search_button_->setDefault(true);
  cancel_button_ = new QPushButton(tr("Cancel"));
  cancel_button_->setEnabled(false);
  progress_ = new QProgressBar;
  progress_->setRange(0, 1000);
  progress_->setTextVisible(false);
  status_ = new QLabel(tr("Fill in the model, cluster and batch, then search every valid plan."));
  status_->setWordWrap(true);
  general_problem_ = problem_label();
  connect(search_button_, &QPushButton::clicked, this, &PlanView::search);
  connect(cancel_button_, &QPushButton::clicked, this, &PlanView::cancelSearch);

  auto* buttons = new QHBoxLayout;
  buttons->addWidget(search_button_);
  buttons->addWidget(cancel_button_);
  buttons->addWidget(progress_, 1);

  auto* explanation = new QLabel(
      tr("<b>Search</b> enumerates every split of the model over data, tensor and pipeline parallelism "
         "with virtual stages, uneven layer splits, micro-batch sizes, schedules (1F1B, interleaved, GPipe), activation "
         "recompute, sequence parallelism, the distributed optimizer and the overlaps of gradient "
         "reduce, parameter gather and tensor-parallel communication, keeps the combinations "
         "Megatron-LM accepts, predicts each one's memory per device and step time from the profile, "
         "and ranks those that fit. The results list why every other combination was set aside."));
  explanation->setWordWrap(true);
  explanation->setTextFormat(Qt::RichText);
  auto* left = new QVBoxLayout;
  left->addWidget(model_box);
  left->addStretch(1);
  auto* right = new QVBoxLayout;
  right->addWidget(cluster_box);
  right->addWidget(training_box);
  right->addWidget(explanation);
  right->addStretch(1);
  auto* columns = new QHBoxLayout;
  columns->addLayout(left, 1);
  columns->addLayout(right, 1);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(columns, 1);
  layout->addWidget(general_problem_);
  layout->addLayout(buttons);
  layout->addWidget(status_);
}

void PlanView::selectPreset(const QString& name) {
  const core::ModelPreset& preset = core::find_model_preset(name.toStdString());
  preset_name_ = std::string(preset.name);
  preset_source_->setText(tr("%1 — %2").arg(q(preset.family), q(preset.source)));
  filling_ = true;
  preset_->setCurrentText(name);
  filling_ = false;
  showModel(preset.spec);
  check();
}

void PlanView::showModel(const core::ModelSpec& model) {
  filling_ = true;
  numbers_["num-layers"]->setValue(int(model.num_layers));
  numbers_["hidden-size"]->setValue(int(model.hidden_size));
  numbers_["num-attention-heads"]->setValue(int(model.num_attention_heads));
  numbers_["num-query-groups"]->setValue(int(model.query_groups()));
  numbers_["ffn-hidden-size"]->setValue(int(model.ffn_hidden_size));
  numbers_["vocab-size"]->setValue(int(model.vocab_size.value_or(model.padded_vocab_size.value_or(0))));
  numbers_["seq-length"]->setValue(int(model.seq_length));
  untied_->setChecked(model.untie_embeddings_and_output_weights);
  filling_ = false;
}

PlanInputs PlanView::inputs() const {
  PlanInputs in;
  // A preset keeps what the form does not show (activation, normalisation, positions, biases).
  if (!preset_name_.empty()) in.model = core::find_model_preset(preset_name_).spec;
  else in.model.name = "custom";
  auto value = [&](const char* key) { return int64_t(numbers_.at(key)->value()); };
  in.model.num_layers = value("num-layers");
  in.model.hidden_size = value("hidden-size");
  in.model.num_attention_heads = value("num-attention-heads");
  const int64_t query_groups = value("num-query-groups");  // as many as heads: plain multi-head attention
  in.model.num_query_groups =
      query_groups == in.model.num_attention_heads ? std::nullopt : std::optional<int64_t>(query_groups);
  in.model.ffn_hidden_size = value("ffn-hidden-size");
  in.model.vocab_size = value("vocab-size");  // the search pads it for each tp it tries
  in.model.padded_vocab_size.reset();
  in.model.seq_length = value("seq-length");
  in.model.untie_embeddings_and_output_weights = untied_->isChecked();
  in.nodes = value("nodes");
  in.devices_per_node = value("devices-per-node");
  in.profile = profile_->currentText().toStdString();
  in.groups = groups_->groups();
  in.global_batch_size = value("global-batch-size");
  in.dtype = core::parse_dtype(dtype_->currentText().toStdString());
  in.attention_backend = core::parse_attention_backend(attention_->currentText().toStdString());
  in.objective = plan::parse_objective(objective_->currentText().toStdString());
  in.uneven_layer_splits = uneven_splits_->isChecked();
  return in;
}

void PlanView::setInputs(const PlanInputs& in) {
  bool is_preset = false;
  for (const core::ModelPreset& preset : core::model_presets())
    if (preset.spec == in.model) is_preset = true;
  if (is_preset) selectPreset(QString::fromStdString(in.model.name));
  else {
    preset_name_.clear();
    preset_source_->setText(tr("Edited: your own architecture"));
    filling_ = true;
    preset_->setCurrentText(kCustomModel);
    filling_ = false;
    showModel(in.model);
  }
  filling_ = true;
  numbers_["nodes"]->setValue(int(in.nodes));
  numbers_["devices-per-node"]->setValue(int(in.devices_per_node));
  profile_->setCurrentText(QString::fromStdString(in.profile));
  groups_->setGroups(in.groups);
  numbers_["global-batch-size"]->setValue(int(in.global_batch_size));
  dtype_->setCurrentText(q(core::to_string(in.dtype)));
  attention_->setCurrentText(attention_backend_text(in.attention_backend));
  objective_->setCurrentText(q(plan::to_string(in.objective)));
  uneven_splits_->setChecked(in.uneven_layer_splits);
  filling_ = false;
  check();
}

QString PlanView::problemShownFor(const QString& field) const {
  const auto it = problems_.find(field);
  if (it == problems_.end() || it->second->isHidden()) return {};
  return it->second->text();
}

bool PlanView::canSearch() const { return general_problem_->isHidden() && !isSearching() && [&] {
  for (const auto& [key, label] : problems_)
    if (!label->isHidden()) return false;
  return true;
}(); }

bool PlanView::isSearching() const { return job_->isRunning(); }

void PlanView::check() {
  try {
    const core::Profile profile = core::resolve_profile(profile_->currentText().toStdString());
    QString peak;
    for (const auto& [dtype, flops] : profile.device.peak_flops_per_s)
      peak += tr("%1%2 TFLOP/s %3").arg(peak.isEmpty() ? "" : ", ").arg(flops / 1e12, 0, 'f', flops < 1e13 ? 2 : 0).arg(q(core::to_string(dtype)));
    profile_summary_->setText(tr("%1: %2 GiB, %3 (%4)")
                                  .arg(QString::fromStdString(profile.device.name))
                                  .arg(double(profile.device.memory_bytes) / double(int64_t(1) << 30), 0, 'f', 0)
                                  .arg(peak)
                                  .arg(QString::fromStdString(profile.provenance)));
  } catch (const Error&) {
    profile_summary_->clear();  // the problem itself is shown next to the field
  }
  for (auto& [key, label] : problems_) label->hide();
  general_problem_->hide();
  // A mixed cluster's groups replace the nodes, devices-per-node and profile fields.
  const bool mixed = !groups_->text().trimmed().isEmpty();
  for (QWidget* field : {static_cast<QWidget*>(numbers_["nodes"]), static_cast<QWidget*>(numbers_["devices-per-node"]),
                         static_cast<QWidget*>(profile_)})
    field->setEnabled(!mixed);
  if (mixed) profile_summary_->clear();  // the groups name the profiles
  const PlanInputs in = inputs();
  std::optional<InputProblem> problem = find_input_problem(in);
  if (const QString unread = groups_->problem(); !unread.isEmpty())
    problem = InputProblem{"cluster-groups", unread.toStdString()};
  if (problem) {
    const QString message = QString::fromStdString(problem->message);
    const auto it = problems_.find(QString::fromStdString(problem->field));
    QLabel* label = it != problems_.end() ? it->second : general_problem_;
    label->setText(message);
    label->show();
    summary_->clear();
  } else {
    summary_->setText(tr("%1 parameters on %2 devices")
                          .arg(QLocale(QLocale::English).toString(qlonglong(core::parameter_count(in.model))))
                          .arg(in.devices()));
  }
  search_button_->setEnabled(canSearch());
}

void PlanView::search() {
  if (!canSearch()) return;
  const PlanInputs in = inputs();
  try {
    running_request_ = std::make_shared<const plan::SearchRequest>(to_search_request(in));
  } catch (const Error& e) {
    status_->setText(QString::fromStdString(e.what()));
    return;
  }
  plan::SearchOptions options;
  options.top = top_plans_;
  options.pareto = true;
  options.nearest_misses = 10;
  progress_->setValue(0);
  status_->setText(tr("Searching plans for %1 on %2 devices…").arg(QString::fromStdString(in.model.name)).arg(in.devices()));
  job_->start(*running_request_, options);
  search_button_->setEnabled(false);
  cancel_button_->setEnabled(true);
  saveSettings();
  emit searchStarted();
}

void PlanView::cancelSearch() { job_->cancel(); }

void PlanView::saveSettings() const {
  QSettings settings;
  settings.beginGroup("plan");
  settings.setValue("preset", QString::fromStdString(preset_name_));
  for (const auto& [key, box] : numbers_) settings.setValue(key, box->value());
  settings.setValue("untied", untied_->isChecked());
  settings.setValue("profile", profile_->currentText());
  settings.setValue("cluster-groups", groups_->text());
  settings.setValue("dtype", dtype_->currentText());
  settings.setValue("attention-backend", attention_->currentText());
  settings.setValue("objective", objective_->currentText());
  settings.setValue("uneven-layer-splits", uneven_splits_->isChecked());
}

void PlanView::restoreSettings() {
  QSettings settings;
  settings.beginGroup("plan");
  if (!settings.contains("nodes")) {
    setInputs(default_plan_inputs());
    return;
  }
  filling_ = true;
  for (const auto& [key, box] : numbers_) box->setValue(settings.value(key, box->value()).toInt());
  untied_->setChecked(settings.value("untied").toBool());
  profile_->setCurrentText(settings.value("profile", profile_->currentText()).toString());
  groups_->setText(settings.value("cluster-groups").toString());
  dtype_->setCurrentText(settings.value("dtype", dtype_->currentText()).toString());
  attention_->setCurrentText(settings.value("attention-backend", attention_->currentText()).toString());
  objective_->setCurrentText(settings.value("objective", objective_->currentText()).toString());
  uneven_splits_->setChecked(settings.value("uneven-layer-splits", true).toBool());
  // A preset that this Loom no longer has leaves the saved fields as a custom model.
  const core::ModelPreset* preset = known_preset(settings.value("preset").toString());
  preset_->setCurrentText(preset ? q(preset->name) : kCustomModel);
  preset_name_ = preset ? std::string(preset->name) : std::string();
  preset_source_->setText(preset ? tr("%1 — %2").arg(q(preset->family), q(preset->source)) : tr("Edited: your own architecture"));
  filling_ = false;
}

}  // namespace loom::gui
