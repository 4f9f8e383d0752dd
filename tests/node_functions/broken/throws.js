console.log('about to fail');
throw new Error('init went wrong');
