// Word count: lines -> words -> (word, 1) -> keyed running count -> stdout.
//
//   weir local wordcount.so                       counts a built-in text
//   weir local wordcount.so --arg input=FILE      counts the words of FILE
//
// Words are maximal runs of ASCII letters and digits, lower-cased.
#include <weir/weir.h>

#include <cctype>
#include <string>
#include <utility>
#include <vector>

namespace {

const std::vector<std::string> kDefaultText = {
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles",
    "And by opposing end them. To die -- to sleep,",
    "No more; and by a sleep to say we end",
    "The heart-ache and the thousand natural shocks",
    "That flesh is heir to: 'tis a consummation",
    "Devoutly to be wish'd. To die, to sleep;",
    "To sleep, perchance to dream -- ay, there's the rub:",
};

using WordCount = std::pair<std::string, std::int64_t>;

class Tokenizer {
 public:
  void flatMap(const std::string& line, weir::Collector<std::string>& out) {
    word_.clear();
    for (char c : line) {
      if (std::isalnum(static_cast<unsigned char>(c))) {
        word_ += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      } else if (!word_.empty()) {
        out.collect(word_);
        word_.clear();
      }
    }
    if (!word_.empty()) out.collect(word_);
  }

 private:
  std::string word_;
};

void build(weir::JobBuilder& job) {
  job.name("word count");
  auto input = job.args().get("input");
  auto lines = input ? job.readTextFile(*input) : job.fromCollection(kDefaultText);
  lines.uid("lines");
  lines.flatMap(Tokenizer{})
      .name("tokenize")
      .uid("tokenize")
      .map([](const std::string& word) { return WordCount(word, 1); })
      .name("pair")
      .uid("pair")
      .keyBy([](const WordCount& wc) { return wc.first; })
      .reduce([](const WordCount& acc, const WordCount& v) {
        return WordCount(acc.first, acc.second + v.second);
      })
      .name("count")
      .uid("count")
      .print()
      .name("print")
      .uid("print");
}

}  // namespace

WEIR_PLUGIN("wordcount", "1.0.0", build)
