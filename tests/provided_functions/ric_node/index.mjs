// A handler run by AWS's Node.js runtime interface client (npm's aws-lambda-ric) as a custom
// runtime's bootstrap.
let count = 0;

export const handler = async (event, context) => {
  count += 1;
  console.log('node ric invocation', count);
  return { event, count, requestId: context.awsRequestId };
};
