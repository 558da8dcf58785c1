// Compacts a short history with the official openai package for Node.js and prints the result.
// OPENAI_BASE_URL and OPENAI_API_KEY say where and as whom; NODE_PATH must reach the package.
const { OpenAI } = require("openai");

async function main() {
  const client = new OpenAI({
    baseURL: process.env.OPENAI_BASE_URL,
    apiKey: process.env.OPENAI_API_KEY,
    maxRetries: 0,
  });
  const compacted = await client.responses.compact({
    model: "gpt-5.4",
    input: [
      { role: "user", content: "hello from node" },
      { role: "assistant", content: "hi there" },
      { role: "user", content: "please summarize" },
    ],
  });
  process.stdout.write(JSON.stringify(compacted));
}

main().catch((error) => {
  process.stderr.write(`${error.status ?? ""} ${error.message}\n`);
  process.exit(1);
});
