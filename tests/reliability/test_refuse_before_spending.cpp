// Refuse before spending (issue 17, item 2): each kind of bad input that `scion run` used to
// find only after creating its run directory (or after the training), or reported without a
// place or in a library's words, is refused by `scion validate` and `scion run` with its
// location, a hint and the documented exit code, and nothing is written.
#include <sys/stat.h>

#include <cstring>

#include "reliability.h"

using namespace reliability;

namespace {

struct Case {
  const char* what;
  std::vector<std::pair<std::string, std::string>> edits;  // on tiny_graph()
  std::string sets;                                        // extra arguments (--set ...)
  std::string located;  // "g.toml:L:C" (the graph file's name is prefixed) or "--set ..."
  const char* message;
  const char* hint;
};

std::vector<Case> cases() {
  return {
      {"a --set value of the wrong kind is located at the override", {}, "--set stages.0.steps=x",
       "--set stages.0.steps=x", "stage 0 needs steps = <positive integer>", ""},
      {"a --set value out of range is located at the override", {}, "--set nodes.student.width=0",
       "--set nodes.student.width=0", "'width' in node 'student' (model.gpt) must be at least 1, got 0", "width is at least 1"},
      {"a graph check's problem with a --set value is located at the override", {}, "--set nodes.student.vocab=100",
       "--set nodes.student.vocab=100", "a vocabulary of 100 is smaller than tokenizer 'tok'", "set vocab = 257"},
      {"an unknown key an override adds is located at the override", {}, "--set nodes.student.widht=8",
       "--set nodes.student.widht=8", "unknown key 'widht' in node 'student'", "did you mean 'width'?"},
      {"a vocabulary smaller than the tokenizer's", {{"vocab = 257", "vocab = 200"}}, "", "g.toml:19:9",
       "a vocabulary of 200 is smaller than tokenizer 'tok' (tokenizer.bytes), which gives ids up to 256",
       "set vocab = 257 (or up to 384"},
      {"validation files shorter than one window",
       {{"valid_files = [\"" + news("valid.txt") + "\"]", "valid_files = [\"@TINY@\"]"}}, "", "g.toml:13:15",
       "valid_files of node 'corpus' hold fewer tokens than one window of 17", "smaller seq_len"},
      {"training files shorter than one window", {{"files = [\"" + news("train.txt") + "\"]", "files = [\"@TINY@\"]"}},
       "", "g.toml:12:9", "files of node 'corpus' hold fewer tokens than one window of 17", "give longer files"},
      {"an evaluator's windows longer than the model's context",
       {{"data = [\"corpus\"]", "tokenizer = \"tok\"\nseq_len = 64\ndomains = { news = \"" + news("valid.txt") + "\" }"}},
       "", "g.toml:35:11", "seq_len 64 is longer than the context of model 'student' (16)", "seq_len <= 16"},
      {"a CUDA device the machine does not have", {{"device = \"cpu\"", "device = \"cuda:99\""}}, "", "g.toml:3:10",
       "'device' in [run] is cuda:99, but this machine has", "device = \"auto\""},
      {"negative threads", {{"threads = 1", "threads = -2"}}, "", "g.toml:4:11",
       "'threads' in [run] must be at least 0, got -2", "threads is at least 0"},
      {"a model too large for this machine", {{"layers = 1", "layers = 100000000000"}}, "", "g.toml:21:10",
       "parameters needs", "check layers, width"},
      {"tokenizer files that do not load",
       {{"plugin = \"tokenizer.bytes\"",
         "plugin = \"tokenizer.gpt2\"\nvocab = \"" + std::string(SCION_SOURCE_DIR) + "/data/bert/vocab.txt\""}},
       "", "g.toml:8:9", "the tokenizer's files cannot be loaded", "encoder.json"},
      // Issue 35, item 5: sizes beyond the machine are refused at their key, before any
      // allocation (these aborted in glibc, looped in the allocator, wrote past a block or
      // grew memory until the OOM killer).
      {"a batch of 2^61 windows", {{"batch_size = 2", "batch_size = 2305843009213693952"}}, "", "g.toml:15:14",
       "a batch of 2305843009213693952 windows of 16 tokens needs", "a smaller batch_size"},
      {"a shuffle buffer of 10^13 windows", {{"seq_len = 16\n", "shuffle_buffer = 10000000000000\nseq_len = 16\n"}}, "",
       "g.toml:14:18", "a shuffle buffer of 10000000000000 windows of 16 tokens needs", "a smaller shuffle_buffer"},
      {"a growth op's width near 2^63",
       {{"losses = [\"lm\"]\n", "losses = [\"lm\"]\nops = [ { plugin = \"grow.masked\", target = \"student\", width = 9223372036854775000 } ]\n"}},
       "", "g.toml:42:63", "op 'grow.masked' of stage 0: the grown model 'student'", "check width, ffn and layers"},
      {"a growth op's FFN of 2^62",
       {{"losses = [\"lm\"]\n", "losses = [\"lm\"]\nops = [ { plugin = \"grow.masked\", target = \"student\", ffn = 4611686018427387904 } ]\n"}},
       "", "g.toml:42:61", "the grown model 'student' (1.52e+20 parameters) needs", "check width, ffn and layers"},
      {"a growth op of 10^8 layers",
       {{"losses = [\"lm\"]\n", "losses = [\"lm\"]\nops = [ { plugin = \"grow.masked\", target = \"student\", layers = 100000000 } ]\n"}},
       "", "g.toml:42:64", "the grown model 'student'", "check width, ffn and layers"},
      // Issue 35, item 9: what run refused only when the op applied, or never (NaN trains NaN).
      {"a growth op's width that is not a multiple of the head size",
       {{"losses = [\"lm\"]\n", "losses = [\"lm\"]\nops = [ { plugin = \"grow.masked\", target = \"student\", width = 33 } ]\n"}},
       "", "g.toml:42:63", "width 33 is not a multiple of the head size 8 of model 'student'", "width = 40"},
      {"a growth op's width below the model's",
       {{"losses = [\"lm\"]\n", "losses = [\"lm\"]\nops = [ { plugin = \"grow.net2wider\", target = \"student\", width = 8 } ]\n"}},
       "", "g.toml:42:66", "width 8 is smaller than the width of model 'student' (16)", "width >= 16"},
      {"an infinite learning rate", {{"losses = [\"lm\"]\n", "losses = [\"lm\"]\noptimizer = { lr = inf }\n"}}, "",
       "g.toml:42:20", "'lr' in the optimizer of stage 0 must be a finite number, got inf", "lr is at least 0"},
      {"a loss weight of NaN", {{"losses = [\"lm\"]", "losses = { lm = nan }"}}, "", "g.toml:41:17",
       "the weight of loss 'lm' in stage 0 must be a finite number, got nan", "lm = 1.0"},
      {"a training file that is a FIFO", {{"files = [\"" + news("train.txt") + "\"]", "files = [\"@FIFO@\"]"}}, "",
       "g.toml:12:9", "'files' in node 'corpus' (data.text): '@FIFO@' is a FIFO (named pipe)", "name a regular file"},
      {"validation files that are a directory",
       {{"valid_files = [\"" + news("valid.txt") + "\"]", "valid_files = [\"@DIR@\"]"}}, "", "g.toml:13:16",
       "valid_files of node 'corpus' names the folder '@DIR@', not a file of text", "@DIR@/*.txt"},
      {"a --set NaN", {}, "--set nodes.student.dropout=nan", "--set nodes.student.dropout=nan",
       "'dropout' in node 'student' (model.gpt) must be a finite number, got nan", "dropout is in [0, 1)"},
  };
}

}  // namespace

TEST(RefuseBeforeSpending, EachKindIsRefusedByValidateAndRunWithNothingWritten) {
  const fs::path dir = temp("refuse");
  std::ofstream(dir / "tiny.txt") << "too short\n";
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  fs::create_directories(dir / "folder");
  auto place = [&](std::string s) {
    for (const auto& [name, file] : {std::pair{"@TINY@", "tiny.txt"}, {"@FIFO@", "fifo"}, {"@DIR@", "folder"}})
      for (size_t at; (at = s.find(name)) != std::string::npos;) s.replace(at, std::strlen(name), (dir / file).string());
    return s;
  };
  for (Case c : cases()) {
    SCOPED_TRACE(c.what);
    std::string text = tiny_graph();
    for (auto [from, to] : c.edits) text = edit(text, from, place(to));
    const std::string message = place(c.message), hint = place(c.hint);
    c.message = message.c_str(), c.hint = hint.c_str();
    std::ofstream(dir / "g.toml") << text;
    const std::string located =
        (c.located.rfind("--set", 0) == 0 ? c.located : (dir / "").string() + c.located) + ": error: ";
    const Result v = sh("validate " + (dir / "g.toml").string() + " " + c.sets);
    EXPECT_EQ(exit_code(v), 3) << v.out;
    EXPECT_NE(v.out.find(located), std::string::npos) << located << "\n" << v.out;
    EXPECT_NE(v.out.find(c.message), std::string::npos) << v.out;
    EXPECT_NE(v.out.find(c.hint), std::string::npos) << v.out;
    const Result r = sh("run " + (dir / "g.toml").string() + " " + c.sets + " --plain --out " + (dir / "run").string());
    EXPECT_EQ(exit_code(r), 3) << r.out;
    EXPECT_NE(r.out.find(located), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "run")) << "a run directory was created for a refused graph";
  }
  fs::remove_all(dir);
}

// The unedited graph validates and runs: every refusal above is its edit's doing.
TEST(RefuseBeforeSpending, TheTinyGraphRuns) {
  const fs::path dir = temp("refuse_ok");
  std::ofstream(dir / "g.toml") << tiny_graph();
  const Result r = sh("run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run").string());
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_TRUE(fs::exists(dir / "run" / "student.safetensors")) << r.out;
  fs::remove_all(dir);
}

// `scion run --device cpu` overrides a graph that names a device the machine lacks.
TEST(RefuseBeforeSpending, RunDeviceReplacesTheGraphsDevice) {
  const fs::path dir = temp("refuse_dev");
  std::ofstream(dir / "g.toml") << edit(tiny_graph(), "device = \"cpu\"", "device = \"cuda:99\"");
  const Result r = sh("run " + (dir / "g.toml").string() + " --device cpu --plain --out " + (dir / "run").string());
  EXPECT_EQ(exit_code(r), 0) << r.out;
  const Result bad = sh("run " + (dir / "g.toml").string() + " --device gpu --plain --out " + (dir / "run2").string());
  EXPECT_EQ(exit_code(bad), 3) << bad.out;
  EXPECT_NE(bad.out.find("--set run.device=\"gpu\": error: 'device' in [run] must be cpu, cuda, cuda:N or auto"),
            std::string::npos)
      << bad.out;
  EXPECT_FALSE(fs::exists(dir / "run2"));
  fs::remove_all(dir);
}

// A graph path that is not a readable file is said in words, with the path.
TEST(RefuseBeforeSpending, GraphFilesThatCannotBeReadAreNamed) {
  const fs::path dir = temp("refuse_file");
  Result r = sh("validate " + dir.string());
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find(dir.string() + ": error: this is a directory, not a graph file"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("basic_filebuf"), std::string::npos) << r.out;
  const std::string long_name = (dir / (std::string(300, 'a') + ".toml")).string();
  r = sh("validate " + long_name);
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find(long_name + ": error: cannot open the graph file: File name too long"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("longer than the system allows"), std::string::npos) << r.out;
  r = sh("validate " + (dir / "missing.toml").string());
  EXPECT_NE(r.out.find("missing.toml: error: cannot open the graph file: No such file or directory"), std::string::npos)
      << r.out;
  EXPECT_EQ(listing(dir), std::vector<std::string>{});
  fs::remove_all(dir);
}

// data.shards: a shard shorter than one batch (the node's constructor's refusal) and a file
// that is not a shard, at validation.
TEST(RefuseBeforeSpending, ShardsShorterThanABatch) {
  const fs::path dir = temp("refuse_shards");
  shards::write_shard((dir / "small.bin").string(), std::vector<int32_t>(20, 7));
  std::ofstream(dir / "junk.bin") << "not a shard";
  std::string g = tiny_graph();
  g = edit(g, "plugin = \"data.text\"\ntokenizer = \"tok\"\nfiles = [\"" + news("train.txt") + "\"]\nvalid_files = [\"" +
                  news("valid.txt") + "\"]",
           "plugin = \"data.shards\"\nfiles = [\"" + (dir / "small.bin").string() + "\"]");
  g = edit(g, "[nodes.ppl]\nplugin = \"eval.ppl\"\nmodel = \"student\"\ndata = [\"corpus\"]\nmax_batches = 1\n", "");
  g = edit(g, "eval = { every = 1, evaluators = [\"ppl\"] }\n", "");
  std::ofstream(dir / "g.toml") << g;
  Result r = sh("run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run").string());
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find("g.toml:11:9: error: node 'corpus' (data.shards): shard '" + (dir / "small.bin").string() +
                       "' holds 20 tokens, fewer than one batch (33 = batch_size * seq_len + 1)"),
            std::string::npos)
      << r.out;
  std::ofstream(dir / "g.toml") << edit(g, "small.bin", "junk.bin");
  r = sh("run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run").string());
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find("shorter than the 1024-byte header"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "run"));
  fs::remove_all(dir);
}

// `scion tokenize` refuses an --out it cannot write before tokenizing, in words, and leaves no
// temporary file behind.
TEST(RefuseBeforeSpending, TokenizeOutThatCannotBeWritten) {
  const fs::path dir = temp("refuse_tok");
  fs::create_directories(dir / "shard.bin");  // a directory where the shard should go
  const std::string in = news("valid.txt");
  Result r = sh("tokenize " + in + " --tokenizer tokenizer.bytes --out " + (dir / "shard.bin").string());
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("cannot write '" + (dir / "shard.bin").string() + "': it is a directory"), std::string::npos) << r.out;
  r = sh("tokenize " + in + " --tokenizer tokenizer.bytes --out " + (dir / "no" / "shard.bin").string());
  EXPECT_NE(r.out.find("cannot create '" + (dir / "no" / "shard.bin").string() + "': the folder '" + (dir / "no").string() + "' does not exist"), std::string::npos) << r.out;
  const std::string long_name = (dir / std::string(250, 'b')).string();
  r = sh("tokenize " + in + " --tokenizer tokenizer.bytes --out " + long_name);
  EXPECT_NE(r.out.find("is longer than the system allows"), std::string::npos) << r.out;
  EXPECT_EQ(listing(dir), std::vector<std::string>{"shard.bin"});  // no .tmp anywhere
  // And a good one writes the shard and nothing else.
  r = sh("tokenize " + in + " --tokenizer tokenizer.bytes --out " + (dir / "ok.bin").string());
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"ok.bin", "shard.bin"}));
  fs::remove_all(dir);
}

// `scion report --out` never overwrites a run's own files.
TEST(RefuseBeforeSpending, ReportNeverOverwritesARunsMetrics) {
  const fs::path dir = temp("refuse_report");
  fs::create_directories(dir / "run");
  const std::string line = "{\"step\": 1, \"loss\": 2.5, \"tokens\": 10}\n";
  std::ofstream(dir / "run" / "metrics.jsonl") << line;
  const Result r = sh("report " + (dir / "run").string() + " --out " + (dir / "run" / "metrics.jsonl").string());
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("is one of the inputs"), std::string::npos) << r.out;
  std::ifstream in(dir / "run" / "metrics.jsonl");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), line);
  fs::remove_all(dir);
}

// The documented exit codes (docs/reliability.md): 2 for a wrong command line.
TEST(RefuseBeforeSpending, ExitCodes) {
  EXPECT_EQ(exit_code(sh("validate")), 2);
  EXPECT_EQ(exit_code(sh("frobnicate")), 2);
  EXPECT_EQ(exit_code(sh("run graphs/gpt_pretrain.toml --no-such-option")), 2);
  EXPECT_EQ(exit_code(sh("")), 2);
  EXPECT_EQ(exit_code(sh("--help")), 0);
}
